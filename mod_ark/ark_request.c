/* The client's request, parsed and validated. See ark_request.h.
 * Pure C (APR + jansson), unit-tested directly. */
#include <string.h>

#include <apr_strings.h>

#include "ark_jsonscan.h"
#include "ark_request.h"

static apr_status_t json_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *ark_json_pool_own(json_t *json, apr_pool_t *p)
{
    if (json) {
        apr_pool_cleanup_register(p, json, json_cleanup,
                                  apr_pool_cleanup_null);
    }
    return json;
}

const char *ark_json_pdump(const json_t *json, apr_size_t *plen,
                           apr_pool_t *p)
{
    char *text = json_dumps(json, JSON_COMPACT);
    const char *out;
    apr_size_t len;

    if (!text) {
        return NULL;
    }
    len = strlen(text);
    out = apr_pstrmemdup(p, text, len);
    free(text);
    if (plen) {
        *plen = len;
    }
    return out;
}

void ark_usage_clear(ark_usage_t *u)
{
    u->prompt_tokens = -1;
    u->completion_tokens = -1;
    u->total_tokens = -1;
    u->cached_tokens = -1;
}

static void take_count(long *dst, const json_t *obj, const char *field)
{
    const json_t *v = json_object_get(obj, field);

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *dst = (long)json_integer_value(v);
    }
}

int ark_usage_from_openai(ark_usage_t *u, const json_t *usage)
{
    if (!json_is_object(usage)) {
        return 0;
    }
    take_count(&u->prompt_tokens, usage, "prompt_tokens");
    take_count(&u->completion_tokens, usage, "completion_tokens");
    take_count(&u->total_tokens, usage, "total_tokens");
    take_count(&u->cached_tokens,
               json_object_get(usage, "prompt_tokens_details"),
               "cached_tokens");
    return 1;
}

/* take_count for a located field: non-negative integers only */
static void take_count_field(long *dst, const char *text,
                             const ark_json_field_t *f)
{
    apr_int64_t v;

    if (ark_json_field_integer(text, f, &v) && v >= 0) {
        *dst = (long)v;
    }
}

int ark_usage_from_openai_text(ark_usage_t *u, const char *text,
                               apr_size_t len)
{
    ark_json_field_t f[4], c[1];
    ark_json_type_t top;

    f[0].key = "prompt_tokens";
    f[1].key = "completion_tokens";
    f[2].key = "total_tokens";
    f[3].key = "prompt_tokens_details";
    if (ark_json_scan(text, len, f, 4, &top, NULL) != APR_SUCCESS
        || top != ARK_JSON_OBJECT) {
        return 0;
    }
    take_count_field(&u->prompt_tokens, text, &f[0]);
    take_count_field(&u->completion_tokens, text, &f[1]);
    take_count_field(&u->total_tokens, text, &f[2]);
    if (f[3].type == ARK_JSON_OBJECT) {
        const char *d = text + f[3].start;

        c[0].key = "cached_tokens";
        if (ark_json_scan(d, f[3].end - f[3].start, c, 1, NULL, NULL)
            == APR_SUCCESS) {
            take_count_field(&u->cached_tokens, d, &c[0]);
        }
    }
    return 1;
}

static const char *const known_roles[] = {
    "system", "developer", "user", "assistant", "tool", "function", NULL
};

static int role_known(const char *role)
{
    int i;

    for (i = 0; known_roles[i]; i++) {
        if (!strcmp(role, known_roles[i])) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t check_messages(ark_req_t *req, json_t *messages,
                                   ark_err_t *err, apr_pool_t *p)
{
    size_t i;
    json_t *msg;

    if (!messages) {
        ark_err_set(err, 400, "missing_required_parameter", "messages",
                    "Missing required parameter: 'messages'.");
        return APR_EINVAL;
    }
    if (!json_is_array(messages)) {
        ark_err_set(err, 400, "invalid_type", "messages",
                    "Invalid type for 'messages': expected an array of "
                    "message objects.");
        return APR_EINVAL;
    }
    if (json_array_size(messages) == 0) {
        ark_err_set(err, 400, "empty_array", "messages",
                    "Invalid 'messages': empty array. Expected an array "
                    "with at least one message.");
        return APR_EINVAL;
    }
    json_array_foreach(messages, i, msg) {
        const json_t *role, *content;
        const char *param = apr_psprintf(p, "messages[%lu]",
                                         (unsigned long)i);

        if (!json_is_object(msg)) {
            ark_err_setf(err, p, 400, "invalid_type", param,
                         "Invalid type for '%s': expected an object.", param);
            return APR_EINVAL;
        }
        role = json_object_get(msg, "role");
        if (!json_is_string(role)) {
            param = apr_pstrcat(p, param, ".role", NULL);
            ark_err_setf(err, p, 400, role ? "invalid_type"
                                           : "missing_required_parameter",
                         param, "%s parameter: '%s' (a string).",
                         role ? "Invalid type for" : "Missing required",
                         param);
            return APR_EINVAL;
        }
        if (!role_known(json_string_value(role))) {
            param = apr_pstrcat(p, param, ".role", NULL);
            ark_err_setf(err, p, 400, "invalid_value", param,
                         "Invalid value for '%s': '%s'. Supported values "
                         "are: 'system', 'developer', 'user', 'assistant', "
                         "'tool' and 'function'.", param,
                         ark_err_quote(json_string_value(role), 32, p));
            return APR_EINVAL;
        }
        content = json_object_get(msg, "content");
        if (content && !json_is_string(content) && !json_is_array(content)
            && !json_is_null(content)) {
            param = apr_pstrcat(p, param, ".content", NULL);
            ark_err_setf(err, p, 400, "invalid_type", param,
                         "Invalid type for '%s': expected a string or an "
                         "array of content parts.", param);
            return APR_EINVAL;
        }
    }
    req->n_messages = json_array_size(messages);
    return APR_SUCCESS;
}

apr_status_t ark_json_load_object(json_t **proot, const char *body,
                                  apr_size_t len, ark_err_t *err,
                                  apr_pool_t *p)
{
    json_error_t jerr;
    json_t *root;
    ark_json_type_t top = ARK_JSON_NONE;

    if (len == 0) {
        ark_err_set(err, 400, "invalid_json", NULL,
                    "The request body is empty; expected a JSON object.");
        return APR_EINVAL;
    }
    /* validate with the scanner and build the tree directly: a third of
     * json_loadb's cost; jansson itself only for the error message (and
     * for the one text the scanner is stricter about) */
    root = NULL;
    if (ark_json_scan(body, len, NULL, 0, &top, NULL) == APR_SUCCESS
        && top == ARK_JSON_OBJECT) {
        root = ark_json_build(body, len, 1);
    }
    if (!root) {
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    }
    if (!root) {
        ark_err_setf(err, p, 400, "invalid_json", NULL,
                     "We could not parse the JSON body of your request "
                     "(line %d, column %d: %s).", jerr.line, jerr.column,
                     ark_err_quote(jerr.text, 120, p));
        return APR_EINVAL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        ark_err_set(err, 400, "invalid_json", NULL,
                    "The request body must be a JSON object.");
        return APR_EINVAL;
    }
    *proot = root;
    return APR_SUCCESS;
}

apr_status_t ark_req_check_limits(const char *body, apr_size_t len,
                                  const ark_req_limits_t *lim,
                                  ark_err_t *err, apr_pool_t *p)
{
    ark_json_limits_t jl;
    ark_json_limit_t hit;
    ark_json_field_t f[1];
    apr_status_t rv;

    jl.max_depth = lim->max_depth;
    jl.max_elements = lim->max_elements;
    f[0].key = "messages";
    rv = ark_json_scan_limited(body, len, f, 1, &jl, &hit, NULL);
    if (rv == APR_ENOSPC && hit == ARK_JSON_LIMIT_DEPTH) {
        ark_err_setf(err, p, 400, "json_too_deep", NULL,
                     "The JSON body nests objects and arrays too deeply: "
                     "at most %d levels are allowed.", lim->max_depth);
        return APR_EINVAL;
    }
    if (rv == APR_ENOSPC) {
        ark_err_setf(err, p, 400, "json_too_many_elements", NULL,
                     "The JSON body has too many elements: at most %"
                     APR_SIZE_T_FMT " array items and object members are "
                     "allowed.", lim->max_elements);
        return APR_EINVAL;
    }
    if (rv == APR_SUCCESS && lim->max_messages > 0
        && f[0].type == ARK_JSON_ARRAY && f[0].count > lim->max_messages) {
        ark_err_setf(err, p, 400, "too_many_messages", "messages",
                     "The request has %" APR_SIZE_T_FMT " messages; at most %"
                     APR_SIZE_T_FMT " are allowed.", f[0].count,
                     lim->max_messages);
        return APR_EINVAL;
    }
    return APR_SUCCESS;   /* within limits, or a syntax error for later */
}

/* Reads "model": the part every endpoint shares. */
static apr_status_t check_model(ark_req_t *req, ark_err_t *err,
                                apr_pool_t *p)
{
    json_t *model = json_object_get(req->root, "model");

    if (!model) {
        ark_err_set(err, 400, "missing_required_parameter", "model",
                    "Missing required parameter: 'model'.");
        return APR_EINVAL;
    }
    if (!json_is_string(model) || json_string_length(model) == 0) {
        ark_err_set(err, 400, "invalid_type", "model",
                    "Invalid type for 'model': expected a non-empty string.");
        return APR_EINVAL;
    }
    if (strlen(json_string_value(model)) != json_string_length(model)) {
        ark_err_set(err, 400, "invalid_value", "model",
                    "Invalid value for 'model': contains a NUL character.");
        return APR_EINVAL;
    }
    /* a copy: translators may replace "model" in a copy of root */
    req->model = apr_pstrdup(p, json_string_value(model));
    return APR_SUCCESS;
}

apr_status_t ark_chat_req_parse(ark_req_t *req, const char *body,
                                apr_size_t len, ark_err_t *err,
                                apr_pool_t *p)
{
    json_t *root = NULL;

    apr_status_t rv;

    memset(req, 0, sizeof(*req));
    if (ark_json_load_object(&root, body, len, err, p) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    rv = ark_chat_req_from_json(req, root, len, err, p);
    req->raw = body;
    req->raw_len = len;
    return rv;
}

apr_status_t ark_chat_req_from_json(ark_req_t *req, json_t *root,
                                    apr_size_t body_len, ark_err_t *err,
                                    apr_pool_t *p)
{
    json_t *stream, *opts;

    memset(req, 0, sizeof(*req));
    req->root = ark_json_pool_own(root, p);
    req->body_len = body_len;
    req->endpoint = ARK_ENDPOINT_CHAT;
    if (!json_is_object(root)) {
        ark_err_set(err, 400, "invalid_json", NULL,
                    "The request body must be a JSON object.");
        return APR_EINVAL;
    }
    if (check_model(req, err, p) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    if (check_messages(req, json_object_get(root, "messages"), err, p)) {
        return APR_EINVAL;
    }

    stream = json_object_get(root, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
        ark_err_set(err, 400, "invalid_type", "stream",
                    "Invalid type for 'stream': expected a boolean.");
        return APR_EINVAL;
    }
    req->stream = json_is_true(stream);

    opts = json_object_get(root, "stream_options");
    if (opts && !json_is_null(opts)) {
        const json_t *inc;

        if (!json_is_object(opts)) {
            ark_err_set(err, 400, "invalid_type", "stream_options",
                        "Invalid type for 'stream_options': expected an "
                        "object.");
            return APR_EINVAL;
        }
        if (!req->stream) {
            ark_err_set(err, 400, "invalid_value", "stream_options",
                        "The 'stream_options' parameter is only allowed "
                        "when 'stream' is enabled.");
            return APR_EINVAL;
        }
        inc = json_object_get(opts, "include_usage");
        if (inc && !json_is_boolean(inc)) {
            ark_err_set(err, 400, "invalid_type",
                        "stream_options.include_usage",
                        "Invalid type for 'stream_options.include_usage': "
                        "expected a boolean.");
            return APR_EINVAL;
        }
        req->include_usage = json_is_true(inc);
    }
    return APR_SUCCESS;
}

/* True if v is an array of integers (token ids). */
static int is_token_array(const json_t *v)
{
    size_t i;
    json_t *t;

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return 0;
    }
    json_array_foreach(v, i, t) {
        if (!json_is_integer(t)) {
            return 0;
        }
    }
    return 1;
}

apr_status_t ark_embed_req_parse(ark_req_t *req, const char *body,
                                 apr_size_t len, ark_err_t *err,
                                 apr_pool_t *p)
{
    json_t *input, *item;
    size_t i;

    memset(req, 0, sizeof(*req));
    req->body_len = len;
    req->endpoint = ARK_ENDPOINT_EMBEDDINGS;
    if (ark_json_load_object(&req->root, body, len, err, p) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    ark_json_pool_own(req->root, p);
    req->raw = body;
    req->raw_len = len;
    if (check_model(req, err, p) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    input = json_object_get(req->root, "input");
    if (!input) {
        ark_err_set(err, 400, "missing_required_parameter", "input",
                    "Missing required parameter: 'input'.");
        return APR_EINVAL;
    }
    if (json_is_string(input)) {
        if (json_string_length(input) == 0) {
            ark_err_set(err, 400, "invalid_value", "input",
                        "Invalid value for 'input': empty string.");
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    if (!json_is_array(input) || json_array_size(input) == 0) {
        ark_err_set(err, 400, "invalid_type", "input",
                    "Invalid type for 'input': expected a non-empty string "
                    "or a non-empty array of strings or token arrays.");
        return APR_EINVAL;
    }
    if (is_token_array(input)) {
        return APR_SUCCESS;
    }
    json_array_foreach(input, i, item) {
        if (!(json_is_string(item) && json_string_length(item) > 0)
            && !is_token_array(item)) {
            ark_err_setf(err, p, 400, "invalid_type", "input",
                         "Invalid value for 'input[%lu]': expected a "
                         "non-empty string or an array of token ids.",
                         (unsigned long)i);
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

long ark_req_max_out(const ark_req_t *req)
{
    const json_t *mt = NULL;

    if (req && req->root) {
        mt = json_object_get(req->root, "max_completion_tokens");
        if (!json_is_integer(mt)) {
            mt = json_object_get(req->root, "max_tokens");
        }
    }
    if (json_is_integer(mt) && json_integer_value(mt) > 0) {
        return (long)json_integer_value(mt);
    }
    return 0;
}
