/* Providers: the type table, secret loading and upstream error helpers
 * shared by every provider type. See ark_provider.h. */
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "ark_provider.h"
#include "ark_trace.h"

/* Every provider type, one row each. */
static const ark_provider_type_t *const provider_types[] = {
    &ark_provider_openai,
    &ark_provider_azure,
    &ark_provider_anthropic,
    &ark_provider_gemini,
    NULL
};

/* A secret file larger than this is certainly not an API key. */
#define ARK_SECRET_FILE_MAX 8192

const ark_provider_type_t *ark_provider_type_find(const char *name)
{
    int i;

    for (i = 0; provider_types[i]; i++) {
        if (!strcmp(provider_types[i]->name, name)) {
            return provider_types[i];
        }
    }
    return NULL;
}

const char *ark_provider_type_names(apr_pool_t *p)
{
    const char *s = "";
    int i;

    for (i = 0; provider_types[i]; i++) {
        s = apr_pstrcat(p, s, i ? ", " : "", provider_types[i]->name, NULL);
    }
    return s;
}

static const char *trim_secret(char *s, apr_size_t len)
{
    /* the first line, without surrounding white space */
    char *end;

    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    end = memchr(s, '\n', len);
    if (end) {
        len = (apr_size_t)(end - s);
    }
    while (len > 0 && (s[len - 1] == '\r' || s[len - 1] == ' '
                       || s[len - 1] == '\t')) {
        len--;
    }
    s[len] = '\0';
    return s;
}

apr_status_t ark_provider_load_secret(ark_provider_t *prov,
                                      const char **perr, apr_pool_t *p)
{
    const char *src = prov->secret_source;
    const char *value;

    *perr = NULL;
    if (!src) {
        prov->secret = NULL;
        return APR_SUCCESS;
    }
    if (!strncmp(src, "env:", 4)) {
        const char *env = getenv(src + 4);

        if (!env || !*env) {
            *perr = apr_psprintf(p, "environment variable %s is not set "
                                 "or empty", src + 4);
            return APR_ENOENT;
        }
        value = trim_secret(apr_pstrdup(p, env), strlen(env));
    }
    else if (!strncmp(src, "file:", 5)) {
        apr_file_t *f;
        apr_finfo_t fi;
        apr_size_t n;
        char *buf;
        apr_status_t rv;

        rv = apr_file_open(&f, src + 5, APR_FOPEN_READ, 0, p);
        if (rv != APR_SUCCESS) {
            char msg[120];

            *perr = apr_psprintf(p, "cannot open secret file %s: %s",
                                 src + 5, apr_strerror(rv, msg, sizeof(msg)));
            return rv;
        }
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        if (rv == APR_SUCCESS && fi.size > ARK_SECRET_FILE_MAX) {
            apr_file_close(f);
            *perr = apr_psprintf(p, "secret file %s is larger than %d "
                                 "bytes", src + 5, ARK_SECRET_FILE_MAX);
            return APR_EINVAL;
        }
        buf = apr_palloc(p, ARK_SECRET_FILE_MAX + 1);
        n = ARK_SECRET_FILE_MAX;
        rv = apr_file_read_full(f, buf, n, &n);
        apr_file_close(f);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv)) {
            *perr = apr_psprintf(p, "cannot read secret file %s", src + 5);
            return rv;
        }
        value = trim_secret(buf, n);
    }
    else {
        *perr = "secret source must be env:NAME or file:/path";
        return APR_EINVAL;
    }
    if (!*value) {
        *perr = apr_psprintf(p, "secret from %s is empty", src);
        return APR_EINVAL;
    }
    prov->secret = value;
    return APR_SUCCESS;
}

/* True if text contains any 8-byte window of secret. */
static int leaks_secret(const char *text, const char *secret)
{
    apr_size_t slen, i;

    if (!secret) {
        return 0;
    }
    slen = strlen(secret);
    if (slen < 8) {
        return strstr(text, secret) != NULL;
    }
    for (i = 0; i + 8 <= slen; i++) {
        char window[9];

        memcpy(window, secret + i, 8);
        window[8] = '\0';
        if (strstr(text, window)) {
            return 1;
        }
    }
    return 0;
}

const char *ark_provider_error_message(const char *body, apr_size_t len,
                                       const char *secret, apr_pool_t *p)
{
    json_t *root, *msg;
    const char *out = NULL;

    if (!body || !len) {
        return NULL;
    }
    root = json_loadb(body, len, 0, NULL);
    if (!root) {
        return NULL;
    }
    msg = json_object_get(json_object_get(root, "error"), "message");
    if (!msg) {
        /* Gemini sends a list of error objects when streaming */
        msg = json_object_get(json_object_get(json_array_get(root, 0),
                                              "error"), "message");
    }
    if (json_is_string(msg) && json_string_length(msg) > 0
        && !leaks_secret(json_string_value(msg), secret)) {
        out = ark_err_quote(json_string_value(msg), 512, p);
    }
    json_decref(root);
    return out;
}

void ark_provider_map_status(ark_err_t *err, int status, const char *msg,
                             apr_pool_t *p)
{
    switch (status) {
    case 400:
    case 422:
        ark_err_set(err, 400, "upstream_rejected_request", NULL,
                    msg ? msg : "The upstream provider rejected the "
                                "request as invalid.");
        break;
    case 413:
        ark_err_set(err, 413, "request_too_large", NULL,
                    msg ? msg : "The upstream provider rejected the "
                                "request as too large.");
        break;
    case 401:
    case 403:
        ark_err_set(err, 502, "upstream_auth_failed", NULL,
                    "The upstream provider rejected the gateway's "
                    "credentials.");
        break;
    case 404:
        ark_err_set(err, 502, "upstream_not_found", NULL,
                    "The upstream provider does not know the configured "
                    "model or endpoint.");
        break;
    case 408:
        ark_err_set(err, 504, "upstream_timeout", NULL,
                    "The upstream provider timed out.");
        break;
    case 429:
        ark_err_set(err, 429, "upstream_rate_limited", NULL,
                    "The upstream provider is rate limiting requests; "
                    "retry later.");
        break;
    default:
        ark_err_setf(err, p, 502, "upstream_error", NULL,
                     "The upstream provider failed (HTTP %d).", status);
        break;
    }
}

json_t *ark_stream_chunk_new(const ark_stream_t *st)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:[]}",
                     "id", st->id ? st->id : "chatcmpl-ark",
                     "object", "chat.completion.chunk",
                     "created", (json_int_t)apr_time_sec(st->created),
                     "model", st->upstream_model ? st->upstream_model : "",
                     "choices");
}

const char *ark_sse_data_make(json_t *obj, apr_size_t *plen, apr_pool_t *p)
{
    char *text;
    const char *ev;

    if (!obj) {
        return NULL;
    }
    text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text) {
        return NULL;
    }
    ev = apr_pstrcat(p, "data: ", text, "\n\n", NULL);
    *plen = strlen(text) + 8;
    free(text);
    return ev;
}

void ark_stream_count_content(ark_stream_t *st, const json_t *chunk)
{
    const json_t *delta = json_object_get(
        json_array_get(json_object_get(chunk, "choices"), 0), "delta");
    const json_t *content = json_object_get(delta, "content");

    if ((json_is_string(content) && json_string_length(content) > 0)
        || json_array_size(json_object_get(delta, "tool_calls")) > 0) {
        st->content_events++;
    }
}

apr_status_t ark_stream_emit_json(ark_stream_t *st, json_t *obj)
{
    apr_size_t len = 0;
    const char *ev = ark_sse_data_make(obj, &len, st->pool);

    if (!ev) {
        return APR_ENOMEM;
    }
    ark_stream_count_content(st, obj);
    st->events++;
    return st->emit(st->emit_ctx, ev, len);
}

json_t *ark_usage_to_openai(const ark_usage_t *u)
{
    json_int_t in = u->prompt_tokens > 0 ? u->prompt_tokens : 0;
    json_int_t out = u->completion_tokens > 0 ? u->completion_tokens : 0;
    json_int_t total = u->total_tokens >= 0 ? u->total_tokens : in + out;
    json_t *usage = json_pack("{s:I,s:I,s:I}", "prompt_tokens", in,
                              "completion_tokens", out,
                              "total_tokens", total);

    if (usage && u->cached_tokens >= 0) {
        json_object_set_new(usage, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens",
                                      (json_int_t)u->cached_tokens));
    }
    return usage;
}

apr_status_t ark_stream_finish(ark_stream_t *st)
{
    apr_status_t rv;

    if (st->client_wants_usage) {
        json_t *chunk = ark_stream_chunk_new(st);

        if (chunk) {
            json_object_set_new(chunk, "usage",
                                ark_usage_to_openai(&st->usage));
        }
        if ((rv = ark_stream_emit_json(st, chunk)) != APR_SUCCESS) {
            return rv;
        }
    }
    st->done = 1;
    st->events++;
    return st->emit(st->emit_ctx, "data: [DONE]\n\n", 14);
}

const char *ark_completion_id_make(apr_pool_t *p)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[24];
    char *id = apr_palloc(p, 10 + sizeof(raw));
    apr_size_t i;

    ark_trace_random(raw, sizeof(raw));
    memcpy(id, "chatcmpl-", 9);
    for (i = 0; i < sizeof(raw); i++) {
        id[9 + i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
    }
    id[9 + sizeof(raw)] = '\0';
    return id;
}

const char *ark_url_escape_segment(const char *s, apr_pool_t *p)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (apr_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        }
        else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

apr_array_header_t *ark_upstream_headers(int stream, const char *auth_header,
                                         const char *auth_prefix,
                                         const char *secret, apr_pool_t *p)
{
    apr_array_header_t *h = apr_array_make(p, 6, sizeof(const char *));

    APR_ARRAY_PUSH(h, const char *) = "Content-Type: application/json";
    APR_ARRAY_PUSH(h, const char *) = stream ? "Accept: text/event-stream"
                                             : "Accept: application/json";
    if (secret) {
        APR_ARRAY_PUSH(h, const char *) =
            apr_pstrcat(p, auth_header, ": ", auth_prefix, secret, NULL);
    }
    return h;
}
