/* The semantic cache, as mod_ark uses it: keys, replay, collection.
 * See ark_cache.h. */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "ark_cache.h"

/* Request fields that never change the answer (or are handled apart). */
static const char *const volatile_fields[] = {
    "model", "messages", "stream", "stream_options", "user", "metadata",
    "store", "service_tier", NULL
};

/* The text of a message's content: a string, or the text parts of an
 * array. *plain is 0 when the content holds anything but text. */
static const char *content_text(const json_t *content, int *plain,
                                apr_pool_t *p)
{
    const char *out = "";
    size_t i;
    json_t *part;

    *plain = 1;
    if (json_is_string(content)) {
        return json_string_value(content);
    }
    if (!json_is_array(content)) {
        return "";
    }
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));

        if (type && !strcmp(type, "text")) {
            const char *t = json_string_value(json_object_get(part, "text"));

            out = apr_pstrcat(p, out, *out ? "\n" : "", t ? t : "", NULL);
        }
        else {
            *plain = 0;
        }
    }
    return out;
}

static double number_or(const json_t *v, double dflt)
{
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static const char *sha256_hex(const char *data, apr_size_t len,
                              apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    char *out;

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    out = apr_palloc(p, mdlen * 2 + 1);
    for (i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * mdlen] = '\0';
    return out;
}

apr_status_t ark_cache_key_make(ark_cache_key_t *key, const char **why,
                                const ark_req_t *req, const char *tenant,
                                const char *endpoint, const char *alias,
                                ark_cache_text_t mode, double max_temp,
                                apr_pool_t *p)
{
    const json_t *root = req->root, *messages, *msg;
    json_t *rest, *earlier;
    const char *text = "", *canon, *material;
    apr_size_t i, n, last_user = (apr_size_t)-1, clen = 0;
    int plain = 1, k;

    *why = NULL;
    if (number_or(json_object_get(root, "temperature"), 1.0) > max_temp) {
        *why = "temperature";
        return APR_EINVAL;
    }
    if (number_or(json_object_get(root, "n"), 1.0) > 1.0) {
        *why = "n";
        return APR_EINVAL;
    }
    messages = json_object_get(root, "messages");
    n = json_array_size(messages);
    for (i = 0; i < n; i++) {
        const char *role = json_string_value(
            json_object_get(json_array_get(messages, i), "role"));

        if (role && !strcmp(role, "user")) {
            last_user = i;
        }
    }
    if (last_user == (apr_size_t)-1) {
        *why = "no user message";
        return APR_EINVAL;
    }

    /* the embedded text, and the turns that go into the namespace */
    earlier = json_array();
    for (i = 0; i < n; i++) {
        const char *role, *t;
        int part_plain;

        msg = json_array_get(messages, i);
        role = json_string_value(json_object_get(msg, "role"));
        if (mode == ARK_CACHE_TEXT_LAST_USER && i != last_user) {
            json_array_append(earlier, (json_t *)msg);
            continue;
        }
        if (mode == ARK_CACHE_TEXT_ALL_USER
            && (!role || strcmp(role, "user"))) {
            json_array_append(earlier, (json_t *)msg);
            continue;
        }
        t = content_text(json_object_get(msg, "content"), &part_plain, p);
        plain = plain && part_plain;
        if (mode == ARK_CACHE_TEXT_ALL) {
            text = apr_pstrcat(p, text, *text ? "\n" : "", role ? role : "",
                               ": ", t, NULL);
        }
        else {
            text = apr_pstrcat(p, text, *text ? "\n" : "", t, NULL);
        }
    }
    if (!plain) {
        json_decref(earlier);
        *why = "non-text content";
        return APR_EINVAL;
    }
    if (!*text) {
        json_decref(earlier);
        *why = "no text";
        return APR_EINVAL;
    }

    rest = json_copy((json_t *)root);
    for (k = 0; volatile_fields[k]; k++) {
        json_object_del(rest, volatile_fields[k]);
    }
    json_object_set_new(rest, "messages", earlier);
    canon = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(rest);
    if (!canon) {
        *why = "encoding";
        return APR_ENOMEM;
    }
    material = apr_pstrcat(p, "ark-cache-ns-v1\n", tenant ? tenant : "",
                           "\n", endpoint, "\n", alias, "\n",
                           apr_itoa(p, (int)mode), "\n", canon, NULL);
    clen = strlen(material);
    free((void *)canon);
    key->ns = sha256_hex(material, clen, p);
    key->text = text;
    key->text_len = strlen(text);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ replay */

static json_t *replay_chunk(const json_t *done, json_t *delta,
                            const char *finish)
{
    return json_pack("{s:O?,s:s,s:O?,s:O?,s:[{s:i,s:o,s:O}]}",
                     "id", json_object_get(done, "id"),
                     "object", "chat.completion.chunk",
                     "created", json_object_get(done, "created"),
                     "model", json_object_get(done, "model"),
                     "choices", "index", 0, "delta", delta,
                     "finish_reason",
                     finish ? json_string(finish) : json_null());
}

static apr_status_t emit_obj(json_t *obj, ark_emit_fn *emit, void *ctx,
                             apr_pool_t *p)
{
    apr_size_t len = 0;
    const char *ev = ark_sse_data_make(obj, &len, p);

    return ev ? emit(ctx, ev, len) : APR_ENOMEM;
}

apr_status_t ark_cache_replay(const char *body, apr_size_t len,
                              int include_usage, apr_size_t piece,
                              ark_emit_fn *emit, void *ctx, apr_pool_t *p)
{
    json_t *done = json_loadb(body, len, 0, NULL), *choice, *message;
    const char *content, *finish;
    apr_size_t clen, off = 0;
    apr_status_t rv = APR_EINVAL;

    choice = json_array_get(json_object_get(done, "choices"), 0);
    message = json_object_get(choice, "message");
    if (!json_is_object(message)) {
        json_decref(done);
        return APR_EINVAL;
    }
    content = json_string_value(json_object_get(message, "content"));
    finish = json_string_value(json_object_get(choice, "finish_reason"));
    rv = emit_obj(replay_chunk(done, json_pack("{s:s,s:s}", "role",
                                               "assistant", "content", ""),
                               NULL), emit, ctx, p);
    clen = content ? strlen(content) : 0;
    if (piece == 0) {
        piece = 64;
    }
    while (rv == APR_SUCCESS && off < clen) {
        apr_size_t n = clen - off > piece ? piece : clen - off;

        /* never split a UTF-8 sequence */
        while (off + n < clen && ((unsigned char)content[off + n] & 0xC0)
                                 == 0x80) {
            n++;
        }
        rv = emit_obj(replay_chunk(done, json_pack("{s:s%}", "content",
                                                   content + off, n),
                                   NULL), emit, ctx, p);
        off += n;
    }
    if (rv == APR_SUCCESS) {
        rv = emit_obj(replay_chunk(done, json_object(),
                                   finish ? finish : "stop"), emit, ctx, p);
    }
    if (rv == APR_SUCCESS && include_usage) {
        json_t *u = json_pack("{s:O?,s:s,s:O?,s:O?,s:[],s:O?}",
                              "id", json_object_get(done, "id"),
                              "object", "chat.completion.chunk",
                              "created", json_object_get(done, "created"),
                              "model", json_object_get(done, "model"),
                              "choices", "usage",
                              json_object_get(done, "usage"));

        rv = emit_obj(u, emit, ctx, p);
    }
    if (rv == APR_SUCCESS) {
        rv = emit(ctx, "data: [DONE]\n\n", 14);
    }
    json_decref(done);
    return rv;
}

/* ------------------------------------------------------------ collect */

struct ark_cache_collect_t {
    apr_pool_t *p;
    char *content;
    apr_size_t len, cap;
    const char *id, *model, *finish;
    json_int_t created;
    json_t *usage;              /* owned */
    int tool_calls;
    int done;
    int broken;
};

static apr_status_t collect_cleanup(void *d)
{
    ark_cache_collect_t *c = d;

    json_decref(c->usage);
    return APR_SUCCESS;
}

ark_cache_collect_t *ark_cache_collect_make(apr_pool_t *p)
{
    ark_cache_collect_t *c = apr_pcalloc(p, sizeof(*c));

    c->p = p;
    apr_pool_cleanup_register(p, c, collect_cleanup, apr_pool_cleanup_null);
    return c;
}

static void collect_text(ark_cache_collect_t *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        apr_size_t cap = c->cap ? c->cap * 2 : 1024;
        char *nb;

        while (cap < c->len + n + 1) {
            cap *= 2;
        }
        nb = apr_palloc(c->p, cap);
        if (c->len) {
            memcpy(nb, c->content, c->len);
        }
        c->content = nb;
        c->cap = cap;
    }
    memcpy(c->content + c->len, s, n);
    c->len += n;
    c->content[c->len] = '\0';
}

void ark_cache_collect_feed(ark_cache_collect_t *c, const char *event,
                            apr_size_t len)
{
    json_t *chunk, *choice, *delta, *usage;
    const char *finish;

    if (c->broken || c->done) {
        return;
    }
    if (len < 8 || strncmp(event, "data: ", 6)) {
        c->broken = 1;
        return;
    }
    event += 6;
    len -= 6;
    while (len > 0 && (event[len - 1] == '\n' || event[len - 1] == '\r')) {
        len--;
    }
    if (len == 6 && !strncmp(event, "[DONE]", 6)) {
        c->done = 1;
        return;
    }
    chunk = json_loadb(event, len, 0, NULL);
    if (!json_is_object(chunk) || json_object_get(chunk, "error")) {
        json_decref(chunk);
        c->broken = 1;
        return;
    }
    if (!c->id && json_is_string(json_object_get(chunk, "id"))) {
        c->id = apr_pstrdup(c->p, json_string_value(
                                      json_object_get(chunk, "id")));
        c->model = apr_pstrdup(c->p, json_string_value(
                                         json_object_get(chunk, "model")));
        c->created = json_integer_value(json_object_get(chunk, "created"));
    }
    usage = json_object_get(chunk, "usage");
    if (json_is_object(usage)) {
        json_decref(c->usage);
        c->usage = json_incref(usage);
    }
    choice = json_array_get(json_object_get(chunk, "choices"), 0);
    delta = json_object_get(choice, "delta");
    if (json_is_string(json_object_get(delta, "content"))) {
        json_t *s = json_object_get(delta, "content");

        collect_text(c, json_string_value(s), json_string_length(s));
    }
    if (json_object_get(delta, "tool_calls")) {
        c->tool_calls = 1;
    }
    finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish) {
        c->finish = apr_pstrdup(c->p, finish);
    }
    json_decref(chunk);
}

apr_status_t ark_cache_collect_result(ark_cache_collect_t *c,
                                      int store_tool_calls,
                                      const ark_usage_t *upstream,
                                      const char **pbody, apr_size_t *plen,
                                      apr_pool_t *p)
{
    json_t *done;
    const char *body;

    if (c->broken || !c->done || !c->finish
        || (c->tool_calls && !store_tool_calls)
        || (strcmp(c->finish, "stop") && strcmp(c->finish, "length"))) {
        return APR_EINVAL;
    }
    done = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s%},s:s}]}",
                     "id", c->id ? c->id : "chatcmpl-ark-cache",
                     "object", "chat.completion", "created", c->created,
                     "model", c->model ? c->model : "",
                     "choices", "index", 0, "message", "role", "assistant",
                     "content", c->content ? c->content : "", c->len,
                     "finish_reason", c->finish);
    if (!done) {
        return APR_ENOMEM;
    }
    if (c->usage) {
        json_object_set(done, "usage", c->usage);
    }
    else if (upstream && upstream->prompt_tokens >= 0
             && upstream->completion_tokens > 0) {
        json_object_set_new(done, "usage", json_pack(
            "{s:I,s:I,s:I}",
            "prompt_tokens", (json_int_t)upstream->prompt_tokens,
            "completion_tokens", (json_int_t)upstream->completion_tokens,
            "total_tokens", (json_int_t)(upstream->prompt_tokens
                                         + upstream->completion_tokens)));
    }
    body = ark_json_pdump(done, plen, p);
    json_decref(done);
    if (!body) {
        return APR_ENOMEM;
    }
    *pbody = body;
    return APR_SUCCESS;
}

int ark_cache_storable(const char *body, apr_size_t len,
                       int store_tool_calls)
{
    json_t *done = json_loadb(body, len, 0, NULL), *choice;
    const char *finish;
    int ok = 0;

    choice = json_array_get(json_object_get(done, "choices"), 0);
    finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (finish && (!strcmp(finish, "stop") || !strcmp(finish, "length"))) {
        json_t *calls = json_object_get(json_object_get(choice, "message"),
                                        "tool_calls");

        ok = store_tool_calls || json_array_size(calls) == 0;
    }
    json_decref(done);
    return ok;
}
