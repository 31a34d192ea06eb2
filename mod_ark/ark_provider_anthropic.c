/* Provider type "anthropic": the Anthropic Messages API.
 *
 * Clients speak OpenAI chat completions; this file translates both ways.
 *   request   POST <base>/messages (base e.g. https://api.anthropic.com/v1)
 *             "x-api-key: <secret>", "anthropic-version: <option>"
 *             system/developer messages -> top-level "system" string;
 *             user/assistant/tool messages -> strictly alternating
 *             "messages" of content blocks (text, image, tool_use,
 *             tool_result); max_tokens always sent (the client's, else the
 *             channel's max-tokens= option); sampling, stop, tools and
 *             tool_choice renamed; OpenAI-only parameters dropped.
 *   answer    a "message" object -> chat.completion (text blocks joined,
 *             tool_use blocks -> tool_calls, stop_reason -> finish_reason,
 *             input + cache tokens -> prompt_tokens).
 *   stream    message_start / content_block_* / message_delta /
 *             message_stop events -> chat.completion.chunk events and
 *             "[DONE]"; the block index -> tool call index mapping lives in
 *             st->state for the length of the stream.
 *   errors    {"type":"error","error":{"type","message"}} through the
 *             shared status mapping; 529 (overloaded) is a 502.
 * Options, e.g.
 *   ArkProvider claude anthropic https://api.anthropic.com/v1 \
 *               key=env:ANTHROPIC_API_KEY anthropic-version=2023-06-01 \
 *               max-tokens=8192
 * The client's document (req->root) is only read; every JSON value built
 * here is released before returning.
 */
#include <stdarg.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "ark_provider.h"

#define ANTHROPIC_DEFAULT_VERSION    "2023-06-01"
/* max_tokens is required by the Messages API; used when neither the
 * client nor the max-tokens= option gives one */
#define ANTHROPIC_DEFAULT_MAX_TOKENS 4096L
/* upper bound of the max-tokens= option */
#define ANTHROPIC_MAX_TOKENS_LIMIT   1000000L
/* the Messages API accepts temperatures from 0 to 1 (OpenAI: 0 to 2) */
#define ANTHROPIC_MAX_TEMPERATURE    1.0
/* a message id longer than this is not reused in the completion id */
#define ANTHROPIC_MAX_ID_LEN         128

/* ------------------------------------------------------------ options */

/* True for YYYY-MM-DD with a month 01-12 and a day 01-31. */
static int is_version_date(const char *s)
{
    int i, month, day;

    if (strlen(s) != 10) {
        return 0;
    }
    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (s[i] != '-') {
                return 0;
            }
        }
        else if (!apr_isdigit(s[i])) {
            return 0;
        }
    }
    month = (s[5] - '0') * 10 + (s[6] - '0');
    day = (s[8] - '0') * 10 + (s[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

/* The value of a max-tokens= option (decimal digits only), or -1. */
static long parse_max_tokens(const char *s)
{
    long v = 0;
    const char *c;

    if (!*s || strlen(s) > 7) {
        return -1;
    }
    for (c = s; *c; c++) {
        if (!apr_isdigit(*c)) {
            return -1;
        }
        v = v * 10 + (*c - '0');
    }
    return v >= 1 && v <= ANTHROPIC_MAX_TOKENS_LIMIT ? v : -1;
}

static const char *anthropic_check_option(const char *name,
                                          const char *value, apr_pool_t *p)
{
    if (!strcmp(name, "anthropic-version")) {
        if (!is_version_date(value)) {
            return apr_psprintf(p, "anthropic-version='%s' is not an "
                                "Anthropic API version date such as "
                                ANTHROPIC_DEFAULT_VERSION " (YYYY-MM-DD)",
                                value);
        }
        return NULL;
    }
    if (!strcmp(name, "max-tokens")) {
        if (parse_max_tokens(value) < 0) {
            return apr_psprintf(p, "max-tokens='%s' must be a whole number "
                                "from 1 to %ld", value,
                                ANTHROPIC_MAX_TOKENS_LIMIT);
        }
        return NULL;
    }
    return apr_psprintf(p, "unknown option '%s' for type anthropic "
                        "(expected anthropic-version= or max-tokens=)",
                        name);
}

/* ------------------------------------------------------ build_request */

/* What the request translation carries from message to message. */
typedef struct {
    ark_err_t *err;
    apr_pool_t *p;
    json_t *messages;           /* the Anthropic "messages" being built */
    apr_array_header_t *system; /* const char *, system texts in order */
    int tool_blocks;            /* tool_use/tool_result blocks were sent */
} build_t;

/* Sets a 400 for a request this channel cannot express; returns
 * APR_EINVAL. */
static apr_status_t refuse(build_t *b, const char *code, const char *param,
                           const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static apr_status_t refuse(build_t *b, const char *code, const char *param,
                           const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(b->p, fmt, ap);
    va_end(ap);
    ark_err_set(b->err, 400, code, param, msg);
    return APR_EINVAL;
}

static int is_role(const json_t *msg, const char *role)
{
    const char *r = json_string_value(json_object_get(msg, "role"));

    return r && !strcmp(r, role);
}

/* Number of tool_result blocks at the start of blocks. */
static size_t leading_tool_results(const json_t *blocks)
{
    size_t i;

    for (i = 0; i < json_array_size(blocks); i++) {
        const char *t = json_string_value(
            json_object_get(json_array_get(blocks, i), "type"));

        if (!t || strcmp(t, "tool_result")) {
            break;
        }
    }
    return i;
}

/* Appends a message of role with blocks (reference stolen). Anthropic
 * wants user and assistant turns to alternate, so a message with the
 * same role as the one before is merged into it; tool results merged into
 * a user turn go before its other blocks, as the API requires. A message
 * without blocks is left out. */
static void push_message(build_t *b, const char *role, json_t *blocks)
{
    size_t n = json_array_size(b->messages), i;
    json_t *last = n ? json_array_get(b->messages, n - 1) : NULL;
    json_t *content, *block;

    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return;
    }
    if (!last || !is_role(last, role)) {
        json_t *msg = json_object();

        json_object_set_new(msg, "role", json_string(role));
        json_object_set_new(msg, "content", blocks);
        json_array_append_new(b->messages, msg);
        return;
    }
    content = json_object_get(last, "content");
    json_array_foreach(blocks, i, block) {
        const char *t = json_string_value(json_object_get(block, "type"));

        if (t && !strcmp(t, "tool_result")) {
            json_array_insert(content, leading_tool_results(content), block);
        }
        else {
            json_array_append(content, block);
        }
    }
    json_decref(blocks);
}

static void push_text(json_t *blocks, const json_t *text)
{
    if (json_string_length(text) > 0) {
        json_array_append_new(blocks,
                              json_pack("{s:s,s:O}", "type", "text",
                                        "text", text));
    }
}

/* True if s starts with prefix (lower case), in any case. */
static int has_prefix_nocase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        if (apr_tolower(*s) != *prefix) {
            return 0;
        }
    }
    return 1;
}

/* Appends the image block for an image_url part's URL: a base64 data URL
 * becomes a "base64" source, an http(s) URL a "url" source. */
static apr_status_t push_image(build_t *b, json_t *blocks, const char *url,
                               const char *param)
{
    json_t *source;

    if (!strncmp(url, "data:", 5)) {
        const char *comma = strchr(url, ',');
        const char *semi = strchr(url, ';');
        apr_size_t hlen = comma ? (apr_size_t)(comma - url) : 0;

        if (!comma || !semi || semi > comma || semi == url + 5
            || hlen < 12 || strncmp(comma - 7, ";base64", 7)
            || !comma[1]) {
            return refuse(b, "invalid_value", param,
                          "Invalid value for '%s': an image data URL must "
                          "be base64-encoded, such as "
                          "data:image/png;base64,...", param);
        }
        source = json_pack("{s:s,s:s%,s:s}", "type", "base64",
                           "media_type", url + 5, (size_t)(semi - url - 5),
                           "data", comma + 1);
    }
    else if (has_prefix_nocase(url, "https://")
             || has_prefix_nocase(url, "http://")) {
        source = json_pack("{s:s,s:s}", "type", "url", "url", url);
    }
    else {
        return refuse(b, "invalid_value", param,
                      "Invalid value for '%s': expected an http(s) URL or a "
                      "base64 data URL.", param);
    }
    json_array_append_new(blocks, json_pack("{s:s,s:o}", "type", "image",
                                            "source", source));
    return APR_SUCCESS;
}

/* Appends the blocks for an OpenAI message content (string, array of
 * parts or null) to blocks. Images only where the API takes them. */
static apr_status_t push_content(build_t *b, json_t *blocks,
                                 const json_t *content, const char *param,
                                 int images)
{
    size_t j;
    const json_t *part;

    if (json_is_string(content)) {
        push_text(blocks, content);
        return APR_SUCCESS;
    }
    json_array_foreach(content, j, part) {
        const char *pp = apr_psprintf(b->p, "%s[%lu]", param,
                                      (unsigned long)j);
        const char *type = json_string_value(json_object_get(part, "type"));
        const json_t *v;

        if (!type) {
            return refuse(b, "invalid_type", pp, "Invalid type for '%s': "
                          "expected a content part object with a 'type'.",
                          pp);
        }
        if (!strcmp(type, "text") || !strcmp(type, "refusal")) {
            v = json_object_get(part, type);
            if (!json_is_string(v)) {
                return refuse(b, "invalid_type", pp, "Invalid type for "
                              "'%s.%s': expected a string.", pp, type);
            }
            push_text(blocks, v);
        }
        else if (!strcmp(type, "image_url") && images) {
            v = json_object_get(part, "image_url");
            if (json_is_object(v)) {
                v = json_object_get(v, "url");
            }
            if (!json_is_string(v)) {
                return refuse(b, "invalid_type", pp, "Invalid type for "
                              "'%s.image_url.url': expected a string.", pp);
            }
            if (push_image(b, blocks, json_string_value(v),
                           apr_pstrcat(b->p, pp, ".image_url.url", NULL))) {
                return APR_EINVAL;
            }
        }
        else {
            return refuse(b, "unsupported_value", pp,
                          "Content parts of type '%s' are not supported by "
                          "this channel in '%s'.",
                          ark_err_quote(type, 32, b->p), pp);
        }
    }
    return APR_SUCCESS;
}

/* Collects the text of a system or developer message. */
static apr_status_t take_system(build_t *b, const json_t *content,
                                const char *param)
{
    size_t j;
    const json_t *part;

    if (json_is_string(content)) {
        if (json_string_length(content) > 0) {
            APR_ARRAY_PUSH(b->system, const char *) =
                json_string_value(content);
        }
        return APR_SUCCESS;
    }
    json_array_foreach(content, j, part) {
        const json_t *text = json_object_get(part, "text");
        const char *type = json_string_value(json_object_get(part, "type"));

        if (!type || strcmp(type, "text") || !json_is_string(text)) {
            return refuse(b, "unsupported_value",
                          apr_psprintf(b->p, "%s[%lu]", param,
                                       (unsigned long)j),
                          "System and developer messages can only hold text "
                          "parts on this channel.");
        }
        if (json_string_length(text) > 0) {
            APR_ARRAY_PUSH(b->system, const char *) = json_string_value(text);
        }
    }
    return APR_SUCCESS;
}

/* Appends the tool_use blocks for an assistant message's tool_calls. */
static apr_status_t push_tool_calls(build_t *b, json_t *blocks,
                                    const json_t *calls, const char *param)
{
    size_t j;
    const json_t *call;

    if (!calls || json_is_null(calls)) {
        return APR_SUCCESS;
    }
    if (!json_is_array(calls)) {
        return refuse(b, "invalid_type", param, "Invalid type for '%s': "
                      "expected an array.", param);
    }
    json_array_foreach(calls, j, call) {
        const char *cp = apr_psprintf(b->p, "%s[%lu]", param,
                                      (unsigned long)j);
        const json_t *id = json_object_get(call, "id");
        const json_t *fn = json_object_get(call, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *args = json_object_get(fn, "arguments");
        const char *type = json_string_value(json_object_get(call, "type"));
        json_t *input;
        json_error_t jerr;

        if (type && strcmp(type, "function")) {
            return refuse(b, "unsupported_value",
                          apr_pstrcat(b->p, cp, ".type", NULL),
                          "Only tool calls of type 'function' are supported "
                          "by this channel.");
        }
        if (!json_is_string(id) || json_string_length(id) == 0) {
            return refuse(b, "invalid_value",
                          apr_pstrcat(b->p, cp, ".id", NULL),
                          "Invalid value for '%s.id': expected a non-empty "
                          "string.", cp);
        }
        if (!json_is_string(name) || json_string_length(name) == 0) {
            return refuse(b, "invalid_value",
                          apr_pstrcat(b->p, cp, ".function.name", NULL),
                          "Invalid value for '%s.function.name': expected "
                          "a non-empty string.", cp);
        }
        if (args && !json_is_null(args) && !json_is_string(args)) {
            return refuse(b, "invalid_type",
                          apr_pstrcat(b->p, cp, ".function.arguments", NULL),
                          "Invalid type for '%s.function.arguments': "
                          "expected a string of JSON.", cp);
        }
        if (!json_is_string(args)
            || strspn(json_string_value(args), " \t\r\n")
               == json_string_length(args)) {
            /* no arguments at all: a tool without parameters */
            input = json_object();
        }
        else {
            input = json_loadb(json_string_value(args),
                               json_string_length(args), 0, &jerr);
            if (!json_is_object(input)) {
                json_decref(input);
                return refuse(b, "invalid_value",
                              apr_pstrcat(b->p, cp, ".function.arguments",
                                          NULL),
                              "Invalid value for '%s.function.arguments': "
                              "expected a JSON object (%s).", cp,
                              input ? "not an object"
                                    : ark_err_quote(jerr.text, 80, b->p));
            }
        }
        json_array_append_new(blocks,
                              json_pack("{s:s,s:O,s:O,s:o}",
                                        "type", "tool_use", "id", id,
                                        "name", name, "input", input));
        b->tool_blocks = 1;
    }
    return APR_SUCCESS;
}

/* The tool_result block for a "tool" message. */
static apr_status_t push_tool_result(build_t *b, json_t *blocks,
                                     const json_t *msg, const char *param)
{
    const json_t *id = json_object_get(msg, "tool_call_id");
    const json_t *content = json_object_get(msg, "content");
    json_t *block;

    if (!json_is_string(id) || json_string_length(id) == 0) {
        return refuse(b, "invalid_value",
                      apr_pstrcat(b->p, param, ".tool_call_id", NULL),
                      "Invalid value for '%s.tool_call_id': expected a "
                      "non-empty string.", param);
    }
    block = json_pack("{s:s,s:O}", "type", "tool_result", "tool_use_id",
                      id);
    json_array_append_new(blocks, block);
    b->tool_blocks = 1;
    if (json_is_string(content)) {
        if (json_string_length(content) > 0) {
            json_object_set(block, "content", (json_t *)content);
        }
    }
    else if (json_is_array(content)) {
        json_t *parts = json_array();

        json_object_set_new(block, "content", parts);
        if (push_content(b, parts, content,
                         apr_pstrcat(b->p, param, ".content", NULL), 1)) {
            return APR_EINVAL;
        }
        if (json_array_size(parts) == 0) {
            json_object_del(block, "content");
        }
    }
    return APR_SUCCESS;
}

/* Translates "messages" into b->messages and b->system. */
static apr_status_t take_messages(build_t *b, const json_t *messages)
{
    size_t i;
    const json_t *msg;

    json_array_foreach(messages, i, msg) {
        const char *param = apr_psprintf(b->p, "messages[%lu]",
                                         (unsigned long)i);
        const char *cparam = apr_pstrcat(b->p, param, ".content", NULL);
        const json_t *content = json_object_get(msg, "content");
        json_t *blocks;
        apr_status_t rv;

        if (is_role(msg, "system") || is_role(msg, "developer")) {
            if (take_system(b, content, cparam)) {
                return APR_EINVAL;
            }
            continue;
        }
        blocks = json_array();
        if (is_role(msg, "user")) {
            rv = push_content(b, blocks, content, cparam, 1);
            if (rv == APR_SUCCESS) {
                push_message(b, "user", blocks);
                continue;
            }
        }
        else if (is_role(msg, "assistant")) {
            rv = push_content(b, blocks, content, cparam, 0);
            if (rv == APR_SUCCESS) {
                rv = push_tool_calls(b, blocks,
                                     json_object_get(msg, "tool_calls"),
                                     apr_pstrcat(b->p, param, ".tool_calls",
                                                 NULL));
            }
            if (rv == APR_SUCCESS) {
                push_message(b, "assistant", blocks);
                continue;
            }
        }
        else if (is_role(msg, "tool")) {
            rv = push_tool_result(b, blocks, msg, param);
            if (rv == APR_SUCCESS) {
                push_message(b, "user", blocks);
                continue;
            }
        }
        else {
            rv = refuse(b, "unsupported_value",
                        apr_pstrcat(b->p, param, ".role", NULL),
                        "Messages with role 'function' are not supported by "
                        "this channel; use 'tool' messages.");
        }
        json_decref(blocks);
        return rv;
    }
    return APR_SUCCESS;
}

/* A message whose content is one plain text block is sent as a string,
 * the form most requests (and people reading logs) use. */
static void simplify_messages(json_t *messages)
{
    size_t i;
    json_t *msg;

    json_array_foreach(messages, i, msg) {
        json_t *content = json_object_get(msg, "content");
        json_t *block = json_array_get(content, 0);

        if (json_array_size(content) == 1 && json_object_size(block) == 2
            && json_is_string(json_object_get(block, "text"))) {
            json_object_set(msg, "content", json_object_get(block, "text"));
        }
    }
}

/* Translates "tools" and "tool_choice" into body. */
static apr_status_t take_tools(build_t *b, json_t *body, const json_t *root)
{
    const json_t *tools = json_object_get(root, "tools");
    const json_t *choice = json_object_get(root, "tool_choice");
    const json_t *tool;
    const char *mode = json_string_value(choice);
    json_t *out, *tc = NULL;
    size_t i;

    if (!tools || json_is_null(tools)) {
        return APR_SUCCESS;
    }
    if (!json_is_array(tools)) {
        return refuse(b, "invalid_type", "tools", "Invalid type for "
                      "'tools': expected an array.");
    }
    out = json_array();
    json_array_foreach(tools, i, tool) {
        const char *tp = apr_psprintf(b->p, "tools[%lu]", (unsigned long)i);
        const char *type = json_string_value(json_object_get(tool, "type"));
        const json_t *fn = json_object_get(tool, "function");
        const json_t *name = json_object_get(fn, "name");
        const json_t *desc = json_object_get(fn, "description");
        const json_t *params = json_object_get(fn, "parameters");
        json_t *t;

        if (!type || strcmp(type, "function")) {
            json_decref(out);
            return refuse(b, "unsupported_value",
                          apr_pstrcat(b->p, tp, ".type", NULL),
                          "Only tools of type 'function' are supported by "
                          "this channel.");
        }
        if (!json_is_string(name) || json_string_length(name) == 0) {
            json_decref(out);
            return refuse(b, "invalid_value",
                          apr_pstrcat(b->p, tp, ".function.name", NULL),
                          "Invalid value for '%s.function.name': expected a "
                          "non-empty string.", tp);
        }
        t = json_pack("{s:O}", "name", name);
        if (json_is_string(desc)) {
            json_object_set(t, "description", (json_t *)desc);
        }
        json_object_set_new(t, "input_schema", json_is_object(params)
                            ? json_deep_copy(params)
                            : json_pack("{s:s,s:{}}", "type", "object",
                                        "properties"));
        json_array_append_new(out, t);
    }
    if (json_array_size(out) == 0) {
        json_decref(out);
        return APR_SUCCESS;
    }

    if (!choice || json_is_null(choice) || (mode && !strcmp(mode, "auto"))) {
        tc = choice && !json_is_null(choice)
             ? json_pack("{s:s}", "type", "auto") : NULL;
    }
    else if (mode && !strcmp(mode, "required")) {
        tc = json_pack("{s:s}", "type", "any");
    }
    else if (mode && !strcmp(mode, "none")) {
        if (!b->tool_blocks) {
            /* no tools: the model cannot call one */
            json_decref(out);
            return APR_SUCCESS;
        }
        /* the conversation holds tool blocks, which the API only takes
         * with the tools defined: keep them, forbid their use */
        tc = json_pack("{s:s}", "type", "none");
    }
    else if (json_is_object(choice)
             && json_is_string(json_object_get(json_object_get(choice,
                                                               "function"),
                                               "name"))) {
        const char *type = json_string_value(json_object_get(choice,
                                                             "type"));

        if (type && strcmp(type, "function")) {
            json_decref(out);
            return refuse(b, "unsupported_value", "tool_choice.type",
                          "Only tool_choice of type 'function' is supported "
                          "by this channel.");
        }
        tc = json_pack("{s:s,s:O}", "type", "tool", "name",
                       json_object_get(json_object_get(choice, "function"),
                                       "name"));
    }
    else {
        json_decref(out);
        return refuse(b, "invalid_value", "tool_choice",
                      "Invalid value for 'tool_choice': expected 'none', "
                      "'auto', 'required' or {\"type\": \"function\", "
                      "\"function\": {\"name\": ...}}.");
    }
    /* parallel_tool_calls: false has a direct equivalent */
    if (json_is_false(json_object_get(root, "parallel_tool_calls"))
        && (!tc || strcmp(json_string_value(json_object_get(tc, "type")),
                          "none"))) {
        if (!tc) {
            tc = json_pack("{s:s}", "type", "auto");
        }
        json_object_set_new(tc, "disable_parallel_tool_use", json_true());
    }
    json_object_set_new(body, "tools", out);
    if (tc) {
        json_object_set_new(body, "tool_choice", tc);
    }
    return APR_SUCCESS;
}

/* The max_tokens to send: the client's, else the channel's default. */
static apr_status_t take_max_tokens(build_t *b, json_t *body,
                                    const json_t *root,
                                    const ark_provider_t *prov)
{
    static const char *const names[] = { "max_completion_tokens",
                                         "max_tokens" };
    const char *opt = prov->options
        ? apr_table_get(prov->options, "max-tokens") : NULL;
    long dflt = opt ? parse_max_tokens(opt) : -1;
    int i;

    for (i = 0; i < 2; i++) {
        const json_t *v = json_object_get(root, names[i]);

        if (!v || json_is_null(v)) {
            continue;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            return refuse(b, "invalid_value", names[i], "Invalid value for "
                          "'%s': expected an integer of at least 1.",
                          names[i]);
        }
        json_object_set_new(body, "max_tokens",
                            json_integer(json_integer_value(v)));
        return APR_SUCCESS;
    }
    json_object_set_new(body, "max_tokens",
                        json_integer(dflt > 0 ? dflt
                                              : ANTHROPIC_DEFAULT_MAX_TOKENS));
    return APR_SUCCESS;
}

/* Sampling, stop sequences and the end user. */
static apr_status_t take_params(build_t *b, json_t *body, const json_t *root)
{
    static const char *const passed[] = { "top_p", "top_k", NULL };
    const json_t *v;
    int i;

    v = json_object_get(root, "stop");
    if (json_is_string(v)) {
        json_object_set_new(body, "stop_sequences",
                            json_pack("[O]", v));
    }
    else if (json_is_array(v) && json_array_size(v) > 0) {
        size_t j;
        const json_t *s;

        json_array_foreach(v, j, s) {
            if (!json_is_string(s)) {
                return refuse(b, "invalid_type", "stop", "Invalid type for "
                              "'stop': expected a string or an array of "
                              "strings.");
            }
        }
        json_object_set_new(body, "stop_sequences", json_deep_copy(v));
    }
    else if (v && !json_is_null(v) && !json_is_array(v)) {
        return refuse(b, "invalid_type", "stop", "Invalid type for 'stop': "
                      "expected a string or an array of strings.");
    }

    v = json_object_get(root, "temperature");
    if (json_is_number(v)
        && json_number_value(v) > ANTHROPIC_MAX_TEMPERATURE) {
        json_object_set_new(body, "temperature",
                            json_real(ANTHROPIC_MAX_TEMPERATURE));
    }
    else if (v && !json_is_null(v)) {
        json_object_set_new(body, "temperature", json_deep_copy(v));
    }
    for (i = 0; passed[i]; i++) {
        v = json_object_get(root, passed[i]);
        if (v && !json_is_null(v)) {
            json_object_set_new(body, passed[i], json_deep_copy(v));
        }
    }

    v = json_object_get(root, "user");
    if (json_is_string(v) && json_string_length(v) > 0) {
        json_object_set_new(body, "metadata",
                            json_pack("{s:O}", "user_id", v));
    }
    return APR_SUCCESS;
}

/* The system texts joined into one string (NULL when there are none). */
static json_t *system_string(const build_t *b)
{
    const char *s = "";
    int i;

    if (b->system->nelts == 0) {
        return NULL;
    }
    for (i = 0; i < b->system->nelts; i++) {
        s = apr_pstrcat(b->p, s, i ? "\n\n" : "",
                        APR_ARRAY_IDX(b->system, i, const char *), NULL);
    }
    return json_string(s);
}

static apr_status_t anthropic_build_request(ark_upstream_req_t *out,
                                            const ark_provider_t *prov,
                                            const char *upstream_model,
                                            const ark_req_t *req,
                                            ark_err_t *err, apr_pool_t *p)
{
    const json_t *root = req->root;
    const json_t *n = json_object_get(root, "n");
    const char *version = prov->options
        ? apr_table_get(prov->options, "anthropic-version") : NULL;
    json_t *body, *system;
    build_t b;
    apr_status_t rv;

    memset(&b, 0, sizeof(b));
    b.err = err;
    b.p = p;
    if (req->endpoint != ARK_ENDPOINT_CHAT) {
        return refuse(&b, "unsupported_endpoint", NULL,
                      "This channel only serves chat completions.");
    }
    if (json_is_number(n) && json_number_value(n) > 1) {
        return refuse(&b, "unsupported_value", "n",
                      "n > 1 is not supported by this channel");
    }

    b.messages = json_array();
    b.system = apr_array_make(p, 2, sizeof(const char *));
    rv = take_messages(&b, json_object_get(root, "messages"));
    if (rv == APR_SUCCESS && json_array_size(b.messages) == 0) {
        rv = refuse(&b, "invalid_value", "messages", "Invalid 'messages': "
                    "this channel needs at least one user or assistant "
                    "message besides system and developer messages.");
    }
    if (rv != APR_SUCCESS) {
        json_decref(b.messages);
        return rv;
    }
    simplify_messages(b.messages);

    body = json_object();
    json_object_set_new(body, "model", json_string(upstream_model));
    if ((system = system_string(&b))) {
        json_object_set_new(body, "system", system);
    }
    json_object_set_new(body, "messages", b.messages);
    rv = take_max_tokens(&b, body, root, prov);
    if (rv == APR_SUCCESS) {
        rv = take_params(&b, body, root);
    }
    if (rv == APR_SUCCESS) {
        rv = take_tools(&b, body, root);
    }
    if (rv != APR_SUCCESS) {
        json_decref(body);
        return rv;
    }
    if (req->stream) {
        json_object_set_new(body, "stream", json_true());
    }

    out->body = ark_json_pdump(body, &out->body_len, p);
    json_decref(body);
    if (!out->body) {
        ark_err_set(err, 500, "internal_error", NULL,
                    "The gateway could not encode the upstream request.");
        return APR_ENOMEM;
    }
    out->url = apr_pstrcat(p, prov->base_url, "/messages", NULL);
    out->headers = ark_upstream_headers(req->stream, "x-api-key", "",
                                        prov->secret, p);
    APR_ARRAY_PUSH(out->headers, const char *) =
        apr_pstrcat(p, "anthropic-version: ",
                    version ? version : ANTHROPIC_DEFAULT_VERSION, NULL);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------- usage */

/* Anthropic's token counts (-1: not reported). Input tokens exclude
 * cached ones: OpenAI's prompt_tokens is the sum of all three. */
typedef struct {
    long input;
    long cache_read;
    long cache_creation;
    long output;
} counts_t;

static void counts_clear(counts_t *c)
{
    c->input = c->cache_read = c->cache_creation = c->output = -1;
}

static void take_count(long *dst, const json_t *obj, const char *field)
{
    const json_t *v = json_object_get(obj, field);

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *dst = (long)json_integer_value(v);
    }
}

/* Reads an Anthropic "usage" object: counts present replace earlier
 * ones (message_delta's are cumulative). Returns 1 if it was an object. */
static int counts_take(counts_t *c, const json_t *usage)
{
    if (!json_is_object(usage)) {
        return 0;
    }
    take_count(&c->input, usage, "input_tokens");
    take_count(&c->cache_read, usage, "cache_read_input_tokens");
    take_count(&c->cache_creation, usage, "cache_creation_input_tokens");
    take_count(&c->output, usage, "output_tokens");
    return 1;
}

static void counts_to_usage(ark_usage_t *u, const counts_t *c)
{
    int known = c->input >= 0 || c->cache_read >= 0
                || c->cache_creation >= 0;

    if (known) {
        u->prompt_tokens = (c->input > 0 ? c->input : 0)
                           + (c->cache_read > 0 ? c->cache_read : 0)
                           + (c->cache_creation > 0 ? c->cache_creation : 0);
        u->cached_tokens = c->cache_read > 0 ? c->cache_read : 0;
    }
    if (c->output >= 0) {
        u->completion_tokens = c->output;
    }
    if (u->prompt_tokens >= 0 && u->completion_tokens >= 0) {
        u->total_tokens = u->prompt_tokens + u->completion_tokens;
    }
}

/* OpenAI's finish_reason for an Anthropic stop_reason. */
static const char *finish_reason(const char *stop)
{
    if (!stop) {
        return "stop";
    }
    if (!strcmp(stop, "max_tokens")
        || !strcmp(stop, "model_context_window_exceeded")) {
        return "length";
    }
    if (!strcmp(stop, "tool_use")) {
        return "tool_calls";
    }
    if (!strcmp(stop, "refusal")) {
        return "content_filter";
    }
    /* end_turn, stop_sequence, pause_turn and anything newer */
    return "stop";
}

/* ----------------------------------------------------- parse_response */

/* "chatcmpl-" + the message id when it is a plain identifier (keeps the
 * upstream's id findable in its logs), else a fresh id. */
static const char *completion_id(const json_t *id, apr_pool_t *p)
{
    const char *s = json_string_value(id);
    const char *c;

    if (!s || !*s || strlen(s) > ANTHROPIC_MAX_ID_LEN) {
        return ark_completion_id_make(p);
    }
    for (c = s; *c; c++) {
        if (!apr_isalnum(*c) && *c != '_' && *c != '-') {
            return ark_completion_id_make(p);
        }
    }
    return apr_pstrcat(p, "chatcmpl-", s, NULL);
}

/* The OpenAI tool call for a tool_use block, or NULL if it is malformed.
 * New reference. */
static json_t *tool_call_from_block(const json_t *block, apr_pool_t *p)
{
    const json_t *id = json_object_get(block, "id");
    const json_t *name = json_object_get(block, "name");
    const json_t *input = json_object_get(block, "input");
    const char *args;

    if (!json_is_string(id) || !json_is_string(name)
        || (input && !json_is_object(input))) {
        return NULL;
    }
    args = input ? ark_json_pdump(input, NULL, p) : "{}";
    if (!args) {
        return NULL;
    }
    return json_pack("{s:O,s:s,s:{s:O,s:s}}", "id", id, "type", "function",
                     "function", "name", name, "arguments", args);
}

static apr_status_t anthropic_parse_response(const char **pbody,
                                             apr_size_t *plen,
                                             ark_usage_t *usage,
                                             const ark_req_t *req,
                                             const char *body,
                                             apr_size_t len, apr_pool_t *p)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    const json_t *content = json_object_get(root, "content");
    const json_t *block, *model;
    const char *type = json_string_value(json_object_get(root, "type"));
    json_t *calls, *message, *choice, *out;
    apr_array_header_t *texts;
    counts_t counts;
    char *text = NULL;
    apr_size_t text_len = 0;
    size_t i;
    int k, has_text = 0;

    (void)req;
    if (!json_is_object(root) || !type || strcmp(type, "message")
        || !json_is_array(content)) {
        json_decref(root);
        return APR_EINVAL;
    }
    texts = apr_array_make(p, 2, sizeof(const json_t *));
    calls = json_array();
    json_array_foreach(content, i, block) {
        const char *bt = json_string_value(json_object_get(block, "type"));

        if (!bt) {
            break;
        }
        if (!strcmp(bt, "text")) {
            const json_t *t = json_object_get(block, "text");

            if (!json_is_string(t)) {
                break;
            }
            APR_ARRAY_PUSH(texts, const json_t *) = t;
            text_len += json_string_length(t);
            has_text = 1;
        }
        else if (!strcmp(bt, "tool_use")) {
            json_t *call = tool_call_from_block(block, p);

            if (!call) {
                break;
            }
            json_array_append_new(calls, call);
        }
        /* thinking, redacted_thinking, server tool blocks: not part of
         * an OpenAI answer */
    }
    if (i < json_array_size(content)) {
        json_decref(calls);
        json_decref(root);
        return APR_EINVAL;
    }

    if (has_text) {
        char *at = text = apr_palloc(p, text_len + 1);

        for (k = 0; k < texts->nelts; k++) {
            const json_t *t = APR_ARRAY_IDX(texts, k, const json_t *);

            memcpy(at, json_string_value(t), json_string_length(t));
            at += json_string_length(t);
        }
        *at = '\0';
    }
    message = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(message, "content",
                        has_text ? json_stringn(text, text_len)
                                 : json_null());
    if (json_array_size(calls) > 0) {
        json_object_set_new(message, "tool_calls", calls);
    }
    else {
        json_decref(calls);
    }

    model = json_object_get(root, "model");
    out = json_pack("{s:s,s:s,s:I,s:s}",
                    "id", completion_id(json_object_get(root, "id"), p),
                    "object", "chat.completion",
                    "created", (json_int_t)apr_time_sec(apr_time_now()),
                    "model", json_is_string(model)
                             ? json_string_value(model) : "");
    choice = json_pack("{s:i}", "index", 0);
    json_object_set_new(choice, "message", message);
    json_object_set_new(choice, "finish_reason", json_string(finish_reason(
        json_string_value(json_object_get(root, "stop_reason")))));
    json_object_set_new(out, "choices", json_pack("[o]", choice));

    counts_clear(&counts);
    if (counts_take(&counts, json_object_get(root, "usage"))) {
        ark_usage_t u;

        ark_usage_clear(&u);
        counts_to_usage(&u, &counts);
        json_object_set_new(out, "usage", ark_usage_to_openai(&u));
        counts_to_usage(usage, &counts);
    }
    json_decref(root);

    *pbody = ark_json_pdump(out, plen, p);
    json_decref(out);
    return *pbody ? APR_SUCCESS : APR_ENOMEM;
}

/* ------------------------------------------------------- stream_event */

/* One tool_use block of the stream: Anthropic's content block index and
 * the OpenAI tool call index given to it. */
typedef struct {
    long block;
    int tool;
} tool_slot_t;

/* Per-stream state, from st->rpool. */
typedef struct {
    counts_t counts;
    apr_array_header_t *tools;   /* tool_slot_t */
    int started;                 /* the role chunk was sent */
} anth_stream_t;

static anth_stream_t *stream_state(ark_stream_t *st)
{
    anth_stream_t *s = st->state;

    if (!s) {
        s = apr_pcalloc(st->rpool, sizeof(*s));
        counts_clear(&s->counts);
        s->tools = apr_array_make(st->rpool, 4, sizeof(tool_slot_t));
        st->state = s;
    }
    return s;
}

/* Emits a chunk with one choice: delta (stolen) and finish (NULL: null). */
static apr_status_t emit_delta(ark_stream_t *st, json_t *delta,
                               const char *finish)
{
    json_t *chunk = ark_stream_chunk_new(st);
    json_t *choice = json_object();

    if (!chunk || !choice || !delta) {
        json_decref(chunk);
        json_decref(choice);
        json_decref(delta);
        return APR_ENOMEM;
    }
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "delta", delta);
    json_object_set_new(choice, "finish_reason",
                        finish ? json_string(finish) : json_null());
    json_array_append_new(json_object_get(chunk, "choices"), choice);
    return ark_stream_emit_json(st, chunk);
}

/* The OpenAI index of the tool call for block index, or -1. */
static int tool_index(const anth_stream_t *s, long block)
{
    int i;

    for (i = 0; i < s->tools->nelts; i++) {
        const tool_slot_t *slot = &APR_ARRAY_IDX(s->tools, i, tool_slot_t);

        if (slot->block == block) {
            return slot->tool;
        }
    }
    return -1;
}

static long block_index(const json_t *ev)
{
    const json_t *v = json_object_get(ev, "index");

    return json_is_integer(v) && json_integer_value(v) >= 0
           ? (long)json_integer_value(v) : -1;
}

static apr_status_t on_block_start(ark_stream_t *st, anth_stream_t *s,
                                   const json_t *ev)
{
    const json_t *block = json_object_get(ev, "content_block");
    const char *type = json_string_value(json_object_get(block, "type"));
    long index = block_index(ev);
    tool_slot_t *slot;
    const json_t *id, *name, *text;

    if (index < 0 || !type) {
        return APR_EINVAL;
    }
    if (!strcmp(type, "text")) {
        /* the API starts text blocks empty; relay any text anyway */
        text = json_object_get(block, "text");
        if (json_string_length(text) > 0) {
            return emit_delta(st, json_pack("{s:O}", "content", text), NULL);
        }
        return APR_SUCCESS;
    }
    if (strcmp(type, "tool_use")) {
        return APR_SUCCESS;        /* thinking and server tool blocks */
    }
    id = json_object_get(block, "id");
    name = json_object_get(block, "name");
    if (!json_is_string(id) || !json_is_string(name)
        || tool_index(s, index) >= 0) {
        return APR_EINVAL;
    }
    slot = apr_array_push(s->tools);
    slot->block = index;
    slot->tool = s->tools->nelts - 1;
    return emit_delta(st, json_pack("{s:[{s:i,s:O,s:s,s:{s:O,s:s}}]}",
                                    "tool_calls", "index", slot->tool,
                                    "id", id, "type", "function",
                                    "function", "name", name,
                                    "arguments", ""),
                      NULL);
}

static apr_status_t on_block_delta(ark_stream_t *st, anth_stream_t *s,
                                   const json_t *ev)
{
    const json_t *delta = json_object_get(ev, "delta");
    const char *type = json_string_value(json_object_get(delta, "type"));
    long index = block_index(ev);
    const json_t *v;
    int tool;

    if (index < 0 || !type) {
        return APR_EINVAL;
    }
    if (!strcmp(type, "text_delta")) {
        v = json_object_get(delta, "text");
        if (!json_is_string(v)) {
            return APR_EINVAL;
        }
        if (json_string_length(v) == 0) {
            return APR_SUCCESS;
        }
        return emit_delta(st, json_pack("{s:O}", "content", v), NULL);
    }
    if (!strcmp(type, "input_json_delta")) {
        v = json_object_get(delta, "partial_json");
        tool = tool_index(s, index);
        if (!json_is_string(v) || tool < 0) {
            return APR_EINVAL;
        }
        if (json_string_length(v) == 0) {
            return APR_SUCCESS;
        }
        return emit_delta(st, json_pack("{s:[{s:i,s:{s:O}}]}", "tool_calls",
                                        "index", tool, "function",
                                        "arguments", v),
                          NULL);
    }
    /* thinking_delta, signature_delta, citations_delta, ... */
    return APR_SUCCESS;
}

static apr_status_t anthropic_stream_event(ark_stream_t *st,
                                           const ark_sse_event_t *ev)
{
    anth_stream_t *s;
    json_t *data;
    const char *name = ev->event && *ev->event ? ev->event : NULL;
    const char *type;
    apr_status_t rv = APR_SUCCESS;

    if (st->done) {
        return APR_SUCCESS;        /* nothing follows message_stop */
    }
    if (name && !strcmp(name, "error")) {
        return APR_EGENERAL;       /* e.g. overloaded_error mid-stream */
    }
    data = json_loadb(ev->data, ev->data_len, 0, NULL);
    type = json_string_value(json_object_get(data, "type"));
    if (!json_is_object(data) || (!name && !type)) {
        json_decref(data);
        return APR_EINVAL;
    }
    if (type && !strcmp(type, "error")) {
        json_decref(data);
        return APR_EGENERAL;
    }
    if (!name) {
        name = type;
    }
    s = stream_state(st);

    if (!strcmp(name, "message_start")) {
        const json_t *msg = json_object_get(data, "message");

        if (!json_is_object(msg)) {
            rv = APR_EINVAL;
        }
        else {
            counts_take(&s->counts, json_object_get(msg, "usage"));
            counts_to_usage(&st->usage, &s->counts);
            if (!s->started) {
                s->started = 1;
                rv = emit_delta(st, json_pack("{s:s,s:s}", "role",
                                              "assistant", "content", ""),
                                NULL);
            }
        }
    }
    else if (!strcmp(name, "content_block_start")) {
        rv = on_block_start(st, s, data);
    }
    else if (!strcmp(name, "content_block_delta")) {
        rv = on_block_delta(st, s, data);
    }
    else if (!strcmp(name, "message_delta")) {
        const json_t *delta = json_object_get(data, "delta");
        const json_t *stop = json_object_get(delta, "stop_reason");

        if (delta && !json_is_object(delta)) {
            rv = APR_EINVAL;
        }
        else {
            counts_take(&s->counts, json_object_get(data, "usage"));
            counts_to_usage(&st->usage, &s->counts);
            if (json_is_string(stop)) {
                rv = emit_delta(st, json_object(),
                                finish_reason(json_string_value(stop)));
            }
        }
    }
    else if (!strcmp(name, "message_stop")) {
        rv = ark_stream_finish(st);
    }
    /* ping, content_block_stop and event types added later: nothing */
    json_decref(data);
    return rv;
}

/* ---------------------------------------------------------- map_error */

static void anthropic_map_error(ark_err_t *err, const ark_provider_t *prov,
                                int status, const char *body,
                                apr_size_t len, apr_pool_t *p)
{
    if (status == 529) {
        /* overloaded_error: like a 503, the provider's trouble */
        ark_err_set(err, 502, "upstream_error", NULL,
                    "The upstream provider is overloaded (HTTP 529); retry "
                    "later.");
        return;
    }
    ark_provider_map_status(err, status,
                            ark_provider_error_message(body, len,
                                                       prov->secret, p),
                            p);
}

const ark_provider_type_t ark_provider_anthropic = {
    "anthropic",
    ARK_EP_CHAT,
    anthropic_check_option,
    anthropic_build_request,
    anthropic_parse_response,
    anthropic_stream_event,
    NULL,
    anthropic_map_error,
};
