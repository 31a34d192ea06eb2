/* The Anthropic front: Messages API requests in, OpenAI chat requests
 * out; OpenAI answers, stream events and errors back in Anthropic form.
 * See ark_front_anthropic.h. Pure C (APR + jansson), unit-tested
 * directly against golden files (tests/cases/front/anthropic-*).
 *
 * Requests are validated and translated in one walk: every field is
 * checked where it is read, and the first problem ends the walk with a
 * 400 naming its dotted path, as the Messages API words it. Answers are
 * rebuilt from the parsed chat.completion. Streams are a small state
 * machine fed one OpenAI event at a time (see the worked example above
 * ark_anthropic_stream_feed).
 */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "ark_front_anthropic.h"
#include "ark_request.h"

/* Text blocks joined into one OpenAI content string are separated by a
 * blank line, so that two blocks never run into one word. */
#define TEXT_JOIN "\n\n"

/* Tool names the OpenAI pivot can carry (function names: at most 64). */
#define TOOL_NAME_MAX 64

/* ================================================== request translation */

typedef struct {
    ark_err_t *err;
    apr_pool_t *p;
    int oom;                 /* a jansson allocation failed */
} xlate_t;

/* Sets a 400 whose message is "<param>: <what>". */
static apr_status_t fail(xlate_t *x, const char *code, const char *param,
                         const char *what)
{
    ark_err_set(x->err, 400, code, param,
                apr_pstrcat(x->p, param, ": ", what, NULL));
    return APR_EINVAL;
}

static apr_status_t fail_required(xlate_t *x, const char *param)
{
    return fail(x, "missing_required_parameter", param, "Field required");
}

static apr_status_t fail_type(xlate_t *x, const char *param,
                              const char *what)
{
    return fail(x, "invalid_type", param,
                apr_pstrcat(x->p, "Input should be ", what, NULL));
}

/* Sets key in obj (stealing val); remembers an allocation failure. */
static void put(xlate_t *x, json_t *obj, const char *key, json_t *val)
{
    if (!val || json_object_set_new(obj, key, val)) {
        x->oom = 1;
    }
}

/* Appends val to arr (stealing val); remembers an allocation failure. */
static void push(xlate_t *x, json_t *arr, json_t *val)
{
    if (!val || json_array_append_new(arr, val)) {
        x->oom = 1;
    }
}

/* A piece of text of known length (JSON strings may hold NUL). */
typedef struct {
    const char *s;
    size_t len;
} piece_t;

/* A copy of the JSON string v (the input is never shared with the
 * output: the caller may change either). New reference. */
static json_t *dup_string(const json_t *v)
{
    return json_stringn_nocheck(json_string_value(v), json_string_length(v));
}

static void add_piece(apr_array_header_t *pieces, const json_t *str)
{
    piece_t *pc = apr_array_push(pieces);

    pc->s = json_string_value(str);
    pc->len = json_string_length(str);
}

/* The pieces joined by TEXT_JOIN, as a new JSON string. */
static json_t *join_pieces(const apr_array_header_t *pieces, apr_pool_t *p)
{
    const piece_t *pc = (const piece_t *)pieces->elts;
    apr_size_t total = 0, at = 0;
    char *buf;
    int i;

    if (pieces->nelts == 1) {
        return json_stringn(pc[0].s, pc[0].len);
    }
    for (i = 0; i < pieces->nelts; i++) {
        total += pc[i].len + (i ? sizeof(TEXT_JOIN) - 1 : 0);
    }
    buf = apr_palloc(p, total + 1);
    for (i = 0; i < pieces->nelts; i++) {
        if (i) {
            memcpy(buf + at, TEXT_JOIN, sizeof(TEXT_JOIN) - 1);
            at += sizeof(TEXT_JOIN) - 1;
        }
        memcpy(buf + at, pc[i].s, pc[i].len);
        at += pc[i].len;
    }
    buf[at] = '\0';
    return json_stringn(buf, at);
}

/* Reads the "type" of block at path; sets *ptype. */
static apr_status_t block_type(xlate_t *x, const json_t *block,
                               const char *path, const char **ptype)
{
    const json_t *type;

    if (!json_is_object(block)) {
        return fail_type(x, path, "a valid dictionary");
    }
    type = json_object_get(block, "type");
    if (!type) {
        return fail_required(x, apr_pstrcat(x->p, path, ".type", NULL));
    }
    if (!json_is_string(type)) {
        return fail_type(x, apr_pstrcat(x->p, path, ".type", NULL),
                         "a valid string");
    }
    *ptype = json_string_value(type);
    return APR_SUCCESS;
}

/* Reads the string member name of obj at path: required, and non-empty
 * unless allow_empty. */
static apr_status_t member_string(xlate_t *x, const json_t *obj,
                                  const char *name, const char *path,
                                  int allow_empty, const json_t **pstr)
{
    const json_t *v = json_object_get(obj, name);
    const char *field = apr_pstrcat(x->p, path, ".", name, NULL);

    if (!v) {
        return fail_required(x, field);
    }
    if (!json_is_string(v)) {
        return fail_type(x, field, "a valid string");
    }
    if (!allow_empty && json_string_length(v) == 0) {
        return fail(x, "invalid_value", field,
                    "String should have at least 1 character");
    }
    *pstr = v;
    return APR_SUCCESS;
}

/* A text block ({"type":"text","text":...}) at path: its text. */
static apr_status_t text_block(xlate_t *x, const json_t *block,
                               const char *path, const json_t **ptext)
{
    const json_t *text = json_object_get(block, "text");
    const char *field = apr_pstrcat(x->p, path, ".text", NULL);

    if (!text) {
        return fail_required(x, field);
    }
    if (!json_is_string(text)) {
        return fail_type(x, field, "a valid string");
    }
    if (json_string_length(text) == 0) {
        return fail(x, "invalid_value", field,
                    "text content blocks must be non-empty");
    }
    *ptext = text;
    return APR_SUCCESS;
}

/* "system": a string or a list of text blocks -> one system message. */
static apr_status_t convert_system(xlate_t *x, json_t *out_msgs,
                                   const json_t *system)
{
    apr_array_header_t *pieces;
    const json_t *block;
    size_t i;

    if (!system || json_is_null(system)) {
        return APR_SUCCESS;
    }
    if (json_is_string(system)) {
        if (json_string_length(system) > 0) {
            push(x, out_msgs, json_pack("{s:s,s:o}", "role", "system",
                                        "content", dup_string(system)));
        }
        return APR_SUCCESS;
    }
    if (!json_is_array(system)) {
        return fail_type(x, "system",
                         "a valid string or a list of text blocks");
    }
    pieces = apr_array_make(x->p, (int)json_array_size(system) + 1,
                            sizeof(piece_t));
    json_array_foreach(system, i, block) {
        const char *path = apr_psprintf(x->p, "system.%lu",
                                        (unsigned long)i);
        const char *type;
        const json_t *text;

        if (block_type(x, block, path, &type)) {
            return APR_EINVAL;
        }
        if (strcmp(type, "text")) {
            return fail(x, "invalid_value",
                        apr_pstrcat(x->p, path, ".type", NULL),
                        "Input should be 'text'");
        }
        if (text_block(x, block, path, &text)) {
            return APR_EINVAL;
        }
        add_piece(pieces, text);
    }
    if (pieces->nelts > 0) {
        push(x, out_msgs, json_pack("{s:s,s:o}", "role", "system",
                                    "content", join_pieces(pieces, x->p)));
    }
    return APR_SUCCESS;
}

static const char *const image_types[] = {
    "image/jpeg", "image/png", "image/gif", "image/webp", NULL
};

/* An image block -> an OpenAI image_url content part. */
static apr_status_t convert_image(xlate_t *x, const json_t *block,
                                  const char *path, json_t **ppart)
{
    const json_t *source = json_object_get(block, "source");
    const char *spath = apr_pstrcat(x->p, path, ".source", NULL);
    const char *stype;
    const json_t *url;
    json_t *url_json;

    if (!source) {
        return fail_required(x, spath);
    }
    if (block_type(x, source, spath, &stype)) {
        return APR_EINVAL;
    }
    if (!strcmp(stype, "base64")) {
        const json_t *mt, *data;
        apr_size_t len, mlen;
        char *buf;
        int i;

        if (member_string(x, source, "media_type", spath, 0, &mt)
            || member_string(x, source, "data", spath, 0, &data)) {
            return APR_EINVAL;
        }
        for (i = 0; image_types[i]; i++) {
            if (!strcmp(json_string_value(mt), image_types[i])) {
                break;
            }
        }
        if (!image_types[i]) {
            return fail(x, "invalid_value",
                        apr_pstrcat(x->p, spath, ".media_type", NULL),
                        "Input should be 'image/jpeg', 'image/png', "
                        "'image/gif' or 'image/webp'");
        }
        /* data: URL built on the heap: images can be megabytes, and the
         * request pool would keep this copy to the end of the request */
        mlen = strlen(image_types[i]);
        len = 5 + mlen + 8 + json_string_length(data);
        buf = malloc(len + 1);
        if (!buf) {
            x->oom = 1;
            return APR_SUCCESS;
        }
        memcpy(buf, "data:", 5);
        memcpy(buf + 5, image_types[i], mlen);
        memcpy(buf + 5 + mlen, ";base64,", 8);
        memcpy(buf + 13 + mlen, json_string_value(data),
               json_string_length(data));
        buf[len] = '\0';
        url_json = json_stringn_nocheck(buf, len);
        free(buf);
    }
    else if (!strcmp(stype, "url")) {
        if (member_string(x, source, "url", spath, 0, &url)) {
            return APR_EINVAL;
        }
        url_json = dup_string(url);
    }
    else {
        return fail(x, "unsupported_value",
                    apr_pstrcat(x->p, spath, ".type", NULL),
                    apr_psprintf(x->p, "image source '%s' is not supported "
                                 "by this gateway; use 'base64' or 'url'",
                                 ark_err_quote(stype, 32, x->p)));
    }
    *ppart = json_pack("{s:s,s:{s:o}}", "type", "image_url", "image_url",
                       "url", url_json);
    if (!*ppart) {
        x->oom = 1;
    }
    return APR_SUCCESS;
}

/* A tool_result block -> an OpenAI "tool" message. */
static apr_status_t convert_tool_result(xlate_t *x, const json_t *block,
                                        const char *path, json_t **pmsg)
{
    const json_t *id, *content, *is_error, *item;
    const char *cpath = apr_pstrcat(x->p, path, ".content", NULL);
    json_t *text;
    size_t i;

    if (member_string(x, block, "tool_use_id", path, 0, &id)) {
        return APR_EINVAL;
    }
    is_error = json_object_get(block, "is_error");
    if (is_error && !json_is_boolean(is_error) && !json_is_null(is_error)) {
        return fail_type(x, apr_pstrcat(x->p, path, ".is_error", NULL),
                         "a valid boolean");
    }
    content = json_object_get(block, "content");
    if (!content || json_is_null(content)) {
        text = json_string("");
    }
    else if (json_is_string(content)) {
        text = dup_string(content);
    }
    else if (json_is_array(content)) {
        apr_array_header_t *pieces =
            apr_array_make(x->p, (int)json_array_size(content) + 1,
                           sizeof(piece_t));

        json_array_foreach(content, i, item) {
            const char *ipath = apr_psprintf(x->p, "%s.%lu", cpath,
                                             (unsigned long)i);
            const char *type;
            const json_t *t;

            if (block_type(x, item, ipath, &type)) {
                return APR_EINVAL;
            }
            if (!strcmp(type, "image")) {
                return fail(x, "unsupported_value", ipath,
                            "images inside tool_result blocks are not "
                            "supported by this gateway");
            }
            if (strcmp(type, "text")) {
                return fail(x, "invalid_value",
                            apr_pstrcat(x->p, ipath, ".type", NULL),
                            "Input should be 'text' or 'image'");
            }
            if (text_block(x, item, ipath, &t)) {
                return APR_EINVAL;
            }
            add_piece(pieces, t);
        }
        text = pieces->nelts ? join_pieces(pieces, x->p) : json_string("");
    }
    else {
        return fail_type(x, cpath, "a valid string or a list of content "
                         "blocks");
    }
    *pmsg = json_pack("{s:s,s:o,s:o}", "role", "tool", "tool_call_id",
                      dup_string(id), "content", text);
    if (!*pmsg) {
        x->oom = 1;
    }
    return APR_SUCCESS;
}

/* A tool_use block -> an OpenAI tool call. */
static apr_status_t convert_tool_use(xlate_t *x, const json_t *block,
                                     const char *path, json_t **pcall)
{
    const json_t *id, *name, *input;
    char *args;

    if (member_string(x, block, "id", path, 0, &id)
        || member_string(x, block, "name", path, 0, &name)) {
        return APR_EINVAL;
    }
    input = json_object_get(block, "input");
    if (!input) {
        return fail_required(x, apr_pstrcat(x->p, path, ".input", NULL));
    }
    if (!json_is_object(input)) {
        return fail_type(x, apr_pstrcat(x->p, path, ".input", NULL),
                         "a valid dictionary");
    }
    args = json_dumps(input, JSON_COMPACT);
    if (!args) {
        x->oom = 1;
        return APR_SUCCESS;
    }
    *pcall = json_pack("{s:o,s:s,s:{s:o,s:s}}", "id", dup_string(id),
                       "type", "function", "function", "name",
                       dup_string(name), "arguments", args);
    free(args);
    if (!*pcall) {
        x->oom = 1;
    }
    return APR_SUCCESS;
}

/* One Anthropic message -> zero or more OpenAI messages appended to
 * out_msgs. A user turn gives its tool results first (each a "tool"
 * message answering the previous assistant turn), then the rest. */
static apr_status_t convert_message(xlate_t *x, json_t *out_msgs,
                                    const json_t *msg, size_t i, int last)
{
    const char *path = apr_psprintf(x->p, "messages.%lu", (unsigned long)i);
    const json_t *role, *content, *block;
    apr_array_header_t *pieces;
    json_t *parts, *calls, *out;
    int user, has_image = 0;
    size_t j;

    if (!json_is_object(msg)) {
        return fail_type(x, path, "a valid dictionary");
    }
    role = json_object_get(msg, "role");
    if (!role) {
        return fail_required(x, apr_pstrcat(x->p, path, ".role", NULL));
    }
    if (!json_is_string(role)
        || (strcmp(json_string_value(role), "user")
            && strcmp(json_string_value(role), "assistant"))) {
        return fail(x, "invalid_value",
                    apr_pstrcat(x->p, path, ".role", NULL),
                    "Input should be 'user' or 'assistant'");
    }
    user = !strcmp(json_string_value(role), "user");

    content = json_object_get(msg, "content");
    if (!content) {
        return fail_required(x, apr_pstrcat(x->p, path, ".content", NULL));
    }
    if (!json_is_string(content) && !json_is_array(content)) {
        return fail_type(x, apr_pstrcat(x->p, path, ".content", NULL),
                         "a valid string or a list of content blocks");
    }
    if ((json_is_string(content) && json_string_length(content) == 0)
        || (json_is_array(content) && json_array_size(content) == 0)) {
        if (last && !user) {
            return APR_SUCCESS;    /* an empty final assistant turn */
        }
        return fail(x, "invalid_value", path,
                    "all messages must have non-empty content except for "
                    "the optional final assistant message");
    }
    if (json_is_string(content)) {
        push(x, out_msgs, json_pack("{s:s,s:o}", "role", user ? "user"
                                                              : "assistant",
                                    "content", dup_string(content)));
        return APR_SUCCESS;
    }

    pieces = apr_array_make(x->p, 4, sizeof(piece_t));
    parts = json_array();
    calls = json_array();
    if (!parts || !calls) {
        json_decref(parts);
        json_decref(calls);
        x->oom = 1;
        return APR_SUCCESS;
    }
    json_array_foreach(content, j, block) {
        const char *bpath = apr_psprintf(x->p, "%s.content.%lu", path,
                                         (unsigned long)j);
        const char *type;
        const char *only = NULL;   /* the role a block type requires */
        const json_t *text;
        json_t *item = NULL;

        if (block_type(x, block, bpath, &type)) {
            goto refused;
        }
        if (!strcmp(type, "text")) {
            if (text_block(x, block, bpath, &text)) {
                goto refused;
            }
            add_piece(pieces, text);
            push(x, parts, json_pack("{s:s,s:o}", "type", "text", "text",
                                     dup_string(text)));
        }
        else if (!strcmp(type, "image")) {
            if (!user) {
                only = "user";
            }
            else if (convert_image(x, block, bpath, &item)) {
                goto refused;
            }
            else {
                push(x, parts, item);
                has_image = 1;
            }
        }
        else if (!strcmp(type, "tool_result")) {
            if (!user) {
                only = "user";
            }
            else if (convert_tool_result(x, block, bpath, &item)) {
                goto refused;
            }
            else {
                push(x, out_msgs, item);
            }
        }
        else if (!strcmp(type, "tool_use")) {
            if (user) {
                only = "assistant";
            }
            else if (convert_tool_use(x, block, bpath, &item)) {
                goto refused;
            }
            else {
                push(x, calls, item);
            }
        }
        else if (!strcmp(type, "thinking")
                 || !strcmp(type, "redacted_thinking")) {
            /* the upstream cannot verify Claude's signed reasoning */
            if (user) {
                only = "assistant";
            }
        }
        else {
            fail(x, "unsupported_value",
                 apr_pstrcat(x->p, bpath, ".type", NULL),
                 apr_psprintf(x->p, "Input tag '%s' found using 'type' does "
                              "not match any of the supported tags: 'text', "
                              "'image', 'tool_use', 'tool_result', "
                              "'thinking', 'redacted_thinking'",
                              ark_err_quote(type, 32, x->p)));
            goto refused;
        }
        if (only) {
            fail(x, "invalid_value", bpath,
                 apr_psprintf(x->p, "%s blocks are only allowed in %s "
                              "messages", type, only));
            goto refused;
        }
    }

    out = NULL;
    if (user && json_array_size(parts) > 0) {
        out = json_pack("{s:s,s:o}", "role", "user", "content",
                        has_image ? json_incref(parts)
                                  : join_pieces(pieces, x->p));
        if (!out) {
            x->oom = 1;
        }
    }
    else if (!user && (pieces->nelts > 0 || json_array_size(calls) > 0)) {
        out = json_pack("{s:s,s:o}", "role", "assistant", "content",
                        pieces->nelts ? join_pieces(pieces, x->p)
                                      : json_null());
        if (out && json_array_size(calls) > 0) {
            put(x, out, "tool_calls", json_incref(calls));
        }
        if (!out) {
            x->oom = 1;
        }
    }
    if (out) {
        push(x, out_msgs, out);
    }
    json_decref(parts);
    json_decref(calls);
    return APR_SUCCESS;

refused:
    json_decref(parts);
    json_decref(calls);
    return APR_EINVAL;
}

static apr_status_t convert_messages(xlate_t *x, json_t *out_msgs,
                                     const json_t *messages)
{
    const json_t *msg;
    size_t i, n, before;

    if (!messages) {
        return fail_required(x, "messages");
    }
    if (!json_is_array(messages)) {
        return fail_type(x, "messages", "a valid list");
    }
    n = json_array_size(messages);
    if (n == 0) {
        return fail(x, "empty_array", "messages",
                    "at least one message is required");
    }
    before = json_array_size(out_msgs);
    json_array_foreach(messages, i, msg) {
        if (convert_message(x, out_msgs, msg, i, i + 1 == n)) {
            return APR_EINVAL;
        }
    }
    if (json_array_size(out_msgs) == before) {
        /* only an empty final assistant turn, which adds nothing */
        return fail(x, "empty_array", "messages",
                    "at least one message with content is required");
    }
    return APR_SUCCESS;
}

/* A number in [0, 1] (temperature, top_p), copied to out under name. */
static apr_status_t unit_number(xlate_t *x, json_t *out, const json_t *in,
                                const char *name)
{
    const json_t *v = json_object_get(in, name);
    double d;

    if (!v || json_is_null(v)) {
        return APR_SUCCESS;
    }
    if (!json_is_number(v)) {
        return fail_type(x, name, "a valid number");
    }
    d = json_number_value(v);
    if (d < 0) {
        return fail(x, "invalid_value", name,
                    "Input should be greater than or equal to 0");
    }
    if (d > 1) {
        return fail(x, "invalid_value", name,
                    "Input should be less than or equal to 1");
    }
    put(x, out, name, json_deep_copy(v));
    return APR_SUCCESS;
}

static int tool_name_ok(const char *s)
{
    apr_size_t n = 0;

    for (; *s; s++, n++) {
        if (!apr_isalnum(*s) && *s != '_' && *s != '-') {
            return 0;
        }
    }
    return n >= 1 && n <= TOOL_NAME_MAX;
}

/* "tools" -> OpenAI function tools, appended to out (when any). */
static apr_status_t convert_tools(xlate_t *x, json_t *out,
                                  const json_t *tools, int *pcount)
{
    const json_t *tool;
    json_t *list;
    size_t i;

    *pcount = 0;
    if (!tools || json_is_null(tools)) {
        return APR_SUCCESS;
    }
    if (!json_is_array(tools)) {
        return fail_type(x, "tools", "a valid list");
    }
    if (json_array_size(tools) == 0) {
        return APR_SUCCESS;         /* OpenAI refuses an empty list */
    }
    list = json_array();
    json_array_foreach(tools, i, tool) {
        const char *path = apr_psprintf(x->p, "tools.%lu", (unsigned long)i);
        const json_t *type, *name, *desc, *schema;
        json_t *fn;

        if (!json_is_object(tool)) {
            json_decref(list);
            return fail_type(x, path, "a valid dictionary");
        }
        type = json_object_get(tool, "type");
        if (type && !json_is_null(type)
            && !(json_is_string(type)
                 && !strcmp(json_string_value(type), "custom"))) {
            json_decref(list);
            return fail(x, "unsupported_value",
                        apr_pstrcat(x->p, path, ".type", NULL),
                        apr_psprintf(x->p, "tool type '%s' is not supported "
                                     "by this gateway; only client tools "
                                     "(name, description, input_schema) "
                                     "are",
                                     json_is_string(type)
                                     ? ark_err_quote(json_string_value(type),
                                                     40, x->p)
                                     : "?"));
        }
        if (member_string(x, tool, "name", path, 0, &name)) {
            json_decref(list);
            return APR_EINVAL;
        }
        if (!tool_name_ok(json_string_value(name))) {
            json_decref(list);
            return fail(x, "invalid_value",
                        apr_pstrcat(x->p, path, ".name", NULL),
                        "String should match pattern "
                        "'^[a-zA-Z0-9_-]{1,64}$'");
        }
        desc = json_object_get(tool, "description");
        if (desc && !json_is_null(desc) && !json_is_string(desc)) {
            json_decref(list);
            return fail_type(x, apr_pstrcat(x->p, path, ".description",
                                            NULL), "a valid string");
        }
        schema = json_object_get(tool, "input_schema");
        if (!schema) {
            json_decref(list);
            return fail_required(x, apr_pstrcat(x->p, path,
                                                ".input_schema", NULL));
        }
        if (!json_is_object(schema)) {
            json_decref(list);
            return fail_type(x, apr_pstrcat(x->p, path, ".input_schema",
                                            NULL), "a valid dictionary");
        }
        fn = json_pack("{s:o}", "name", dup_string(name));
        if (!fn) {
            x->oom = 1;
            continue;
        }
        if (json_is_string(desc)) {
            put(x, fn, "description", dup_string(desc));
        }
        put(x, fn, "parameters", json_deep_copy(schema));
        push(x, list, json_pack("{s:s,s:o}", "type", "function",
                                "function", fn));
    }
    put(x, out, "tools", list);
    *pcount = (int)json_array_size(tools);
    return APR_SUCCESS;
}

/* "tool_choice" -> tool_choice (and parallel_tool_calls). */
static apr_status_t convert_tool_choice(xlate_t *x, json_t *out,
                                        const json_t *choice, int ntools)
{
    const json_t *type, *name = NULL, *dis;
    const char *t;

    if (!choice || json_is_null(choice)) {
        return APR_SUCCESS;
    }
    if (!json_is_object(choice)) {
        return fail_type(x, "tool_choice", "a valid dictionary");
    }
    type = json_object_get(choice, "type");
    if (!type) {
        return fail_required(x, "tool_choice.type");
    }
    t = json_is_string(type) ? json_string_value(type) : "";
    if (strcmp(t, "auto") && strcmp(t, "any") && strcmp(t, "tool")
        && strcmp(t, "none")) {
        return fail(x, "invalid_value", "tool_choice.type",
                    "Input should be 'auto', 'any', 'tool' or 'none'");
    }
    dis = json_object_get(choice, "disable_parallel_tool_use");
    if (dis && !json_is_boolean(dis) && !json_is_null(dis)) {
        return fail_type(x, "tool_choice.disable_parallel_tool_use",
                         "a valid boolean");
    }
    if (!strcmp(t, "tool")) {
        if (member_string(x, choice, "name", "tool_choice", 0, &name)) {
            return APR_EINVAL;
        }
    }
    if (ntools == 0) {
        if (!strcmp(t, "any") || !strcmp(t, "tool")) {
            return fail(x, "invalid_value", "tool_choice.type",
                        apr_psprintf(x->p, "'%s' requires at least one "
                                     "tool in 'tools'", t));
        }
        return APR_SUCCESS;    /* OpenAI refuses tool_choice alone */
    }
    if (!strcmp(t, "auto")) {
        put(x, out, "tool_choice", json_string("auto"));
    }
    else if (!strcmp(t, "any")) {
        put(x, out, "tool_choice", json_string("required"));
    }
    else if (!strcmp(t, "none")) {
        put(x, out, "tool_choice", json_string("none"));
    }
    else {
        put(x, out, "tool_choice",
            json_pack("{s:s,s:{s:o}}", "type", "function", "function",
                      "name", dup_string(name)));
    }
    if (json_is_true(dis)) {
        put(x, out, "parallel_tool_calls", json_false());
    }
    return APR_SUCCESS;
}

static apr_status_t convert_top_level(xlate_t *x, json_t *out,
                                      const json_t *in)
{
    const json_t *v, *item;
    size_t i;

    /* max_tokens */
    v = json_object_get(in, "max_tokens");
    if (!v) {
        return fail_required(x, "max_tokens");
    }
    if (!json_is_integer(v)) {
        return fail_type(x, "max_tokens", "a valid integer");
    }
    if (json_integer_value(v) < 1) {
        return fail(x, "invalid_value", "max_tokens",
                    "Input should be greater than or equal to 1");
    }
    put(x, out, "max_tokens", json_integer(json_integer_value(v)));

    if (unit_number(x, out, in, "temperature")
        || unit_number(x, out, in, "top_p")) {
        return APR_EINVAL;
    }

    /* top_k: checked, then dropped (no OpenAI equivalent) */
    v = json_object_get(in, "top_k");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v)) {
            return fail_type(x, "top_k", "a valid integer");
        }
        if (json_integer_value(v) < 0) {
            return fail(x, "invalid_value", "top_k",
                        "Input should be greater than or equal to 0");
        }
    }

    v = json_object_get(in, "stop_sequences");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v)) {
            return fail_type(x, "stop_sequences", "a valid list");
        }
        json_array_foreach(v, i, item) {
            if (!json_is_string(item)) {
                return fail_type(x, apr_psprintf(x->p, "stop_sequences.%lu",
                                                 (unsigned long)i),
                                 "a valid string");
            }
        }
        if (json_array_size(v) > 0) {
            put(x, out, "stop", json_deep_copy(v));
        }
    }

    v = json_object_get(in, "stream");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            return fail_type(x, "stream", "a valid boolean");
        }
        put(x, out, "stream", json_boolean(json_is_true(v)));
        if (json_is_true(v)) {
            /* the stream translator needs the usage for message_delta */
            put(x, out, "stream_options",
                json_pack("{s:b}", "include_usage", 1));
        }
    }
    return APR_SUCCESS;
}

static apr_status_t convert_metadata(xlate_t *x, json_t *out,
                                     const json_t *meta)
{
    const json_t *user;

    if (!meta || json_is_null(meta)) {
        return APR_SUCCESS;
    }
    if (!json_is_object(meta)) {
        return fail_type(x, "metadata", "a valid dictionary");
    }
    user = json_object_get(meta, "user_id");
    if (!user || json_is_null(user)) {
        return APR_SUCCESS;
    }
    if (!json_is_string(user)) {
        return fail_type(x, "metadata.user_id", "a valid string");
    }
    if (json_string_length(user) > 0) {
        put(x, out, "user", dup_string(user));
    }
    return APR_SUCCESS;
}

apr_status_t ark_anthropic_request_to_openai(json_t **pout, const json_t *in,
                                             ark_err_t *err, apr_pool_t *p)
{
    xlate_t x;
    const json_t *model;
    json_t *out, *msgs;
    int ntools;

    x.err = err;
    x.p = p;
    x.oom = 0;
    *pout = NULL;
    if (!json_is_object(in)) {
        ark_err_set(err, 400, "invalid_json", NULL,
                    "The request body must be a JSON object.");
        return APR_EINVAL;
    }
    model = json_object_get(in, "model");
    if (!model) {
        return fail_required(&x, "model");
    }
    if (!json_is_string(model)) {
        return fail_type(&x, "model", "a valid string");
    }
    if (json_string_length(model) == 0) {
        return fail(&x, "invalid_value", "model",
                    "String should have at least 1 character");
    }

    out = json_object();
    msgs = json_array();
    if (!out || !msgs) {
        json_decref(out);
        json_decref(msgs);
        goto oom;
    }
    put(&x, out, "model", dup_string(model));
    /* a second reference: msgs is filled below, and released at the end
     * whatever happens */
    put(&x, out, "messages", json_incref(msgs));
    /* the scalars first: their mistakes are the common ones */
    if (convert_top_level(&x, out, in)
        || convert_system(&x, msgs, json_object_get(in, "system"))
        || convert_messages(&x, msgs, json_object_get(in, "messages"))
        || convert_tools(&x, out, json_object_get(in, "tools"), &ntools)
        || convert_tool_choice(&x, out, json_object_get(in, "tool_choice"),
                               ntools)
        || convert_metadata(&x, out, json_object_get(in, "metadata"))) {
        json_decref(msgs);
        json_decref(out);
        return APR_EINVAL;
    }
    json_decref(msgs);
    if (x.oom) {
        json_decref(out);
        goto oom;
    }
    *pout = out;
    return APR_SUCCESS;

oom:
    ark_err_set(err, 500, "internal_error", NULL,
                "The gateway ran out of memory translating the request.");
    return APR_ENOMEM;
}

/* ================================================ answers and stop reasons */

/* The Anthropic stop_reason for an OpenAI finish_reason (NULL: unknown).
 * Servers that report "stop" after calling tools still mean "run the
 * tools": a client waits for "tool_use" to do so. */
static const char *stop_reason_for(const char *finish, int called_tools)
{
    if (finish) {
        if (!strcmp(finish, "length")) {
            return "max_tokens";
        }
        if (!strcmp(finish, "content_filter")) {
            return "refusal";
        }
        if (!strcmp(finish, "tool_calls")
            || !strcmp(finish, "function_call")) {
            return "tool_use";
        }
    }
    return called_tools ? "tool_use" : "end_turn";
}

/* "msg_X" for a completion id "chatcmpl-X" (or "X"), random without. */
static const char *message_id_for(const char *id, apr_pool_t *p)
{
    if (id && *id) {
        if (!strncmp(id, "chatcmpl-", 9) && id[9]) {
            id += 9;
        }
        return apr_pstrcat(p, "msg_", id, NULL);
    }
    return apr_pstrcat(p, "msg_", ark_completion_id_make(p) + 9, NULL);
}

static const char *tool_id_make(apr_pool_t *p)
{
    return apr_pstrcat(p, "toolu_", ark_completion_id_make(p) + 9, NULL);
}

/* The Anthropic usage object for u: input_tokens excludes what was read
 * from the cache, as the Messages API counts; cache_read_input_tokens
 * when the cached count is known. Unknown counts are 0, except that
 * only_known leaves an unknown input_tokens out (message_delta). New
 * reference. */
static json_t *usage_json(const ark_usage_t *u, int only_known)
{
    json_t *usage = json_object();
    long cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
    long in = u->prompt_tokens >= 0 ? u->prompt_tokens - cached : -1;

    if (!usage) {
        return NULL;
    }
    if (in >= 0 || !only_known) {
        json_object_set_new(usage, "input_tokens",
                            json_integer(in > 0 ? in : 0));
    }
    if (u->cached_tokens >= 0) {
        json_object_set_new(usage, "cache_read_input_tokens",
                            json_integer(u->cached_tokens));
    }
    json_object_set_new(usage, "output_tokens",
                        json_integer(u->completion_tokens > 0
                                     ? u->completion_tokens : 0));
    return usage;
}

/* Text of an OpenAI message content: a string, or the text parts of an
 * array. NULL when there is none. */
static json_t *content_text(const json_t *content, apr_pool_t *p)
{
    apr_array_header_t *pieces;
    const json_t *part, *text;
    size_t i;

    if (json_is_string(content)) {
        return json_string_length(content) ? dup_string(content) : NULL;
    }
    if (!json_is_array(content)) {
        return NULL;
    }
    pieces = apr_array_make(p, 2, sizeof(piece_t));
    json_array_foreach(content, i, part) {
        text = json_object_get(part, "text");
        if (json_is_string(text) && json_string_length(text)) {
            add_piece(pieces, text);
        }
    }
    return pieces->nelts ? join_pieces(pieces, p) : NULL;
}

/* Tool input from OpenAI arguments: a JSON object text (or, from lax
 * servers, an object); anything else becomes {}. New reference. */
static json_t *tool_input(const json_t *args)
{
    json_t *input = NULL;

    if (json_is_string(args)) {
        input = json_loadb(json_string_value(args),
                           json_string_length(args), 0, NULL);
    }
    else if (json_is_object(args)) {
        input = json_deep_copy(args);
    }
    if (!json_is_object(input)) {
        json_decref(input);
        input = json_object();
    }
    return input;
}

apr_status_t ark_anthropic_response_from_openai(const char **pbody,
                                                apr_size_t *plen,
                                                const char *openai_body,
                                                apr_size_t len,
                                                const char *model,
                                                apr_pool_t *p)
{
    json_t *root, *out = NULL, *blocks;
    const json_t *object, *choices, *choice, *message, *calls, *call;
    const char *finish;
    ark_usage_t u;
    apr_status_t rv = APR_EINVAL;
    json_t *text;
    size_t i;

    root = json_loadb(openai_body, len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(root)) {
        goto done;
    }
    object = json_object_get(root, "object");
    choices = json_object_get(root, "choices");
    if ((object && !(json_is_string(object)
                     && !strcmp(json_string_value(object),
                                "chat.completion")))
        || !json_is_array(choices) || json_array_size(choices) == 0) {
        goto done;
    }
    choice = json_array_get(choices, 0);
    message = json_object_get(choice, "message");
    if (!json_is_object(message)) {
        goto done;
    }

    rv = APR_ENOMEM;
    blocks = json_array();
    if (!blocks) {
        goto done;
    }
    text = content_text(json_object_get(message, "content"), p);
    if (!text) {
        text = content_text(json_object_get(message, "refusal"), p);
    }
    if (text && json_array_append_new(blocks, json_pack(
                    "{s:s,s:o}", "type", "text", "text", text))) {
        json_decref(blocks);
        goto done;
    }
    calls = json_object_get(message, "tool_calls");
    json_array_foreach(calls, i, call) {
        const json_t *fn = json_object_get(call, "function");
        const json_t *id = json_object_get(call, "id");
        const json_t *name = json_object_get(fn, "name");

        if (!json_is_object(fn)) {
            continue;
        }
        if (json_array_append_new(blocks, json_pack(
                "{s:s,s:s,s:s,s:o}", "type", "tool_use",
                "id", json_is_string(id) && json_string_length(id)
                      ? json_string_value(id) : tool_id_make(p),
                "name", json_is_string(name) ? json_string_value(name) : "",
                "input", tool_input(json_object_get(fn, "arguments"))))) {
            json_decref(blocks);
            goto done;
        }
    }

    ark_usage_clear(&u);
    ark_usage_from_openai(&u, json_object_get(root, "usage"));
    finish = json_string_value(json_object_get(choice, "finish_reason"));
    if (!model) {
        model = json_string_value(json_object_get(root, "model"));
    }
    out = json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:n,s:o}",
                    "id", message_id_for(json_string_value(
                              json_object_get(root, "id")), p),
                    "type", "message",
                    "role", "assistant",
                    "model", model ? model : "",
                    "content", blocks,
                    "stop_reason", stop_reason_for(
                        finish, json_array_size(calls) > 0),
                    "stop_sequence",
                    "usage", usage_json(&u, 0));
    if (out && (*pbody = ark_json_pdump(out, plen, p)) != NULL) {
        rv = APR_SUCCESS;
    }

done:
    json_decref(out);
    json_decref(root);
    return rv;
}

/* =============================================================== errors */

const char *ark_anthropic_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503: case 529:
        return "overloaded_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error"
                                             : "api_error";
    }
}

static json_t *error_object(const ark_err_t *e)
{
    return json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error",
                     "type", ark_anthropic_error_type(e->status),
                     "message", e->message ? e->message : "");
}

const char *ark_anthropic_error_json(const ark_err_t *e, apr_pool_t *p)
{
    static const char fallback[] =
        "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
        "\"message\":\"Internal server error\"}}";
    json_t *obj = error_object(e);
    const char *out = obj ? ark_json_pdump(obj, NULL, p) : NULL;

    json_decref(obj);
    return out ? out : fallback;
}

/* The HTTP status an OpenAI error type stands for (see
 * ark_err_type_for), to type errors that arrive inside a stream. */
static int status_for_openai_type(const char *type)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {
        { "invalid_request_error", 400 },
        { "authentication_error", 401 },
        { "permission_error", 403 },
        { "not_found_error", 404 },
        { "rate_limit_error", 429 },
        { "upstream_error", 502 },
        { "service_unavailable_error", 503 },
        { "timeout_error", 504 },
    };
    apr_size_t i;

    for (i = 0; type && i < sizeof(map) / sizeof(map[0]); i++) {
        if (!strcmp(type, map[i].type)) {
            return map[i].status;
        }
    }
    return 500;
}

/* ============================================================ streaming */

typedef enum {
    BLOCK_NONE = 0,
    BLOCK_TEXT,
    BLOCK_TOOL
} block_kind_t;

struct ark_anthropic_stream_t {
    const char *model;
    ark_emit_fn *emit;
    void *ctx;
    apr_pool_t *pool;         /* the stream's lifetime */
    apr_pool_t *scratch;      /* cleared on every call */
    apr_status_t sticky;      /* emit failed: the client is gone */
    int started;              /* message_start sent */
    int finished;             /* finish_reason seen */
    int usage_final;          /* the usage chunk seen */
    int delta_sent;           /* message_delta sent */
    int ended;                /* message_stop or error sent */
    const char *finish;       /* the OpenAI finish_reason (pool) */
    ark_usage_t usage;

    block_kind_t block;       /* the open content block */
    long next_index;          /* index of the next content block */

    /* the current tool call */
    int called_tools;
    long tool_index;          /* its OpenAI index, -1 before the first */
    const char *tool_upstream_id;  /* its id as the upstream gave it */
    int tool_pending;         /* its block waits for a name */
    const char *pend_id;
    const char *pend_name;
    const char *pend_args;
};

ark_anthropic_stream_t *ark_anthropic_stream_make(const char *model,
                                                  ark_emit_fn *emit,
                                                  void *ctx, apr_pool_t *p)
{
    ark_anthropic_stream_t *as = apr_pcalloc(p, sizeof(*as));

    as->model = apr_pstrdup(p, model ? model : "");
    as->emit = emit;
    as->ctx = ctx;
    as->pool = p;
    apr_pool_create(&as->scratch, p);
    apr_pool_tag(as->scratch, "ark_anthropic_stream");
    ark_usage_clear(&as->usage);
    as->tool_index = -1;
    return as;
}

/* Writes "event: name\ndata: <data>\n\n"; steals data. */
static apr_status_t emit_event(ark_anthropic_stream_t *as, const char *name,
                               json_t *data)
{
    char *text;
    const char *frame;
    apr_status_t rv;

    if (!data) {
        return APR_ENOMEM;
    }
    text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    if (!text) {
        return APR_ENOMEM;
    }
    frame = apr_pstrcat(as->scratch, "event: ", name, "\ndata: ", text,
                        "\n\n", NULL);
    free(text);
    rv = as->emit(as->ctx, frame, strlen(frame));
    if (rv != APR_SUCCESS) {
        as->sticky = rv;
    }
    return rv;
}

static apr_status_t start_message(ark_anthropic_stream_t *as,
                                  const char *upstream_id)
{
    apr_status_t rv;

    if (as->started) {
        return APR_SUCCESS;
    }
    as->started = 1;
    rv = emit_event(as, "message_start", json_pack(
        "{s:s,s:{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:o}}",
        "type", "message_start",
        "message",
        "id", message_id_for(upstream_id, as->scratch),
        "type", "message",
        "role", "assistant",
        "model", as->model,
        "content",
        "stop_reason",
        "stop_sequence",
        "usage", usage_json(&as->usage, 0)));
    if (rv == APR_SUCCESS) {
        rv = emit_event(as, "ping", json_pack("{s:s}", "type", "ping"));
    }
    return rv;
}

static apr_status_t close_block(ark_anthropic_stream_t *as)
{
    if (as->block == BLOCK_NONE) {
        return APR_SUCCESS;
    }
    as->block = BLOCK_NONE;
    return emit_event(as, "content_block_stop",
                      json_pack("{s:s,s:I}", "type", "content_block_stop",
                                "index", (json_int_t)as->next_index - 1));
}

/* Closes the open block and starts a new one; steals content_block. */
static apr_status_t open_block(ark_anthropic_stream_t *as, block_kind_t kind,
                               json_t *content_block)
{
    apr_status_t rv = close_block(as);

    if (rv != APR_SUCCESS) {
        json_decref(content_block);
        return rv;
    }
    as->block = kind;
    return emit_event(as, "content_block_start", json_pack(
        "{s:s,s:I,s:o}", "type", "content_block_start",
        "index", (json_int_t)as->next_index++,
        "content_block", content_block));
}

static apr_status_t emit_delta(ark_anthropic_stream_t *as, const char *type,
                               const char *field, const char *s,
                               apr_size_t len)
{
    return emit_event(as, "content_block_delta", json_pack(
        "{s:s,s:I,s:{s:s,s:s%}}", "type", "content_block_delta",
        "index", (json_int_t)as->next_index - 1,
        "delta", "type", type, field, s, len));
}

static apr_status_t text_delta(ark_anthropic_stream_t *as, const json_t *s)
{
    apr_status_t rv;

    if (as->tool_pending) {
        return APR_EINVAL;          /* a tool call never named */
    }
    if (as->block != BLOCK_TEXT
        && (rv = open_block(as, BLOCK_TEXT,
                            json_pack("{s:s,s:s}", "type", "text",
                                      "text", ""))) != APR_SUCCESS) {
        return rv;
    }
    return emit_delta(as, "text_delta", "text", json_string_value(s),
                      json_string_length(s));
}

/* Starts the block of the pending tool call, now that it has a name,
 * and sends the argument text received so far. */
static apr_status_t start_tool_block(ark_anthropic_stream_t *as)
{
    apr_status_t rv;

    as->tool_pending = 0;
    rv = open_block(as, BLOCK_TOOL, json_pack(
        "{s:s,s:s,s:s,s:{}}", "type", "tool_use",
        "id", as->pend_id ? as->pend_id : tool_id_make(as->pool),
        "name", as->pend_name, "input"));
    if (rv == APR_SUCCESS && as->pend_args && *as->pend_args) {
        rv = emit_delta(as, "input_json_delta", "partial_json",
                        as->pend_args, strlen(as->pend_args));
    }
    as->pend_id = as->pend_name = as->pend_args = NULL;
    return rv;
}

/* One entry of delta.tool_calls. OpenAI sends a call's id and name with
 * its first fragment ({"index":0,"id":"call_1","function":{"name":"f",
 * "arguments":""}}) and argument text in the following ones
 * ({"index":0,"function":{"arguments":"{\"a\":"}}); calls come one after
 * the other, so a new index (or, from servers that number every call 0,
 * a new id) starts the next tool_use block. */
static apr_status_t tool_delta(ark_anthropic_stream_t *as, const json_t *tc)
{
    const json_t *jidx = json_object_get(tc, "index");
    const json_t *fn = json_object_get(tc, "function");
    const char *id = json_string_value(json_object_get(tc, "id"));
    const char *name = json_string_value(json_object_get(fn, "name"));
    const json_t *args = json_object_get(fn, "arguments");
    long idx;
    int other_id, continues;

    if (!json_is_object(tc) || (jidx && !json_is_integer(jidx))
        || (fn && !json_is_object(fn))) {
        return APR_EINVAL;
    }
    if (id && !*id) {
        id = NULL;
    }
    if (name && !*name) {
        name = NULL;
    }
    if (args && !json_is_string(args)) {
        args = NULL;
    }
    idx = jidx ? (long)json_integer_value(jidx)
               : (as->tool_index >= 0 ? as->tool_index : 0);
    other_id = id && as->tool_upstream_id
               && strcmp(id, as->tool_upstream_id);
    continues = as->tool_index >= 0 && idx == as->tool_index && !other_id;

    if (!continues) {
        if (!(idx > as->tool_index || other_id) || as->tool_pending) {
            return APR_EINVAL;      /* an earlier call resumed */
        }
        as->called_tools = 1;
        as->tool_index = idx;
        as->tool_upstream_id = id ? apr_pstrdup(as->pool, id) : NULL;
        as->tool_pending = 1;
        as->pend_id = as->tool_upstream_id;
        as->pend_name = NULL;
        as->pend_args = NULL;
    }
    else if (!as->tool_pending && as->block != BLOCK_TOOL) {
        return APR_EINVAL;          /* its block was closed by text */
    }

    if (as->tool_pending) {
        if (id && !as->pend_id) {
            as->pend_id = as->tool_upstream_id = apr_pstrdup(as->pool, id);
        }
        if (name) {
            as->pend_name = apr_pstrdup(as->pool, name);
        }
        if (args && json_string_length(args)) {
            as->pend_args = apr_pstrcat(as->pool,
                                        as->pend_args ? as->pend_args : "",
                                        json_string_value(args), NULL);
        }
        return as->pend_name ? start_tool_block(as) : APR_SUCCESS;
    }
    if (args && json_string_length(args)) {
        return emit_delta(as, "input_json_delta", "partial_json",
                          json_string_value(args), json_string_length(args));
    }
    return APR_SUCCESS;
}

static apr_status_t send_message_delta(ark_anthropic_stream_t *as)
{
    json_t *usage = usage_json(&as->usage, 1);

    as->delta_sent = 1;
    return emit_event(as, "message_delta", json_pack(
        "{s:s,s:{s:s,s:n},s:o}", "type", "message_delta",
        "delta", "stop_reason",
        stop_reason_for(as->finish, as->called_tools),
        "stop_sequence", "usage", usage));
}

/* The choice with index 0 of a chunk (the first when unnumbered). */
static const json_t *first_choice(const json_t *choices)
{
    const json_t *c;
    size_t i;

    json_array_foreach(choices, i, c) {
        const json_t *idx = json_object_get(c, "index");

        if (!idx || (json_is_integer(idx) && json_integer_value(idx) == 0)) {
            return c;
        }
    }
    return NULL;
}

static apr_status_t on_chunk(ark_anthropic_stream_t *as, const json_t *chunk)
{
    const json_t *choices = json_object_get(chunk, "choices");
    const json_t *usage = json_object_get(chunk, "usage");
    const json_t *choice, *delta, *finish, *calls, *tc;
    static const char *const text_fields[] = { "content", "refusal" };
    apr_status_t rv;
    size_t i;

    if (choices && !json_is_null(choices) && !json_is_array(choices)) {
        return APR_EINVAL;
    }
    choice = first_choice(choices);
    delta = json_object_get(choice, "delta");
    finish = json_object_get(choice, "finish_reason");
    calls = json_object_get(delta, "tool_calls");
    if ((choice && !json_is_object(choice))
        || (delta && !json_is_object(delta) && !json_is_null(delta))
        || (calls && !json_is_array(calls) && !json_is_null(calls))) {
        return APR_EINVAL;
    }

    if (ark_usage_from_openai(&as->usage, usage)
        && (as->finished || json_is_string(finish)
            || json_array_size(choices) == 0)) {
        as->usage_final = 1;
    }
    rv = start_message(as, json_string_value(json_object_get(chunk, "id")));

    for (i = 0; rv == APR_SUCCESS && i < 2; i++) {
        const json_t *s = json_object_get(delta, text_fields[i]);

        if (json_is_string(s) && json_string_length(s) > 0) {
            rv = as->finished ? APR_EINVAL : text_delta(as, s);
        }
    }
    json_array_foreach(calls, i, tc) {
        if (rv != APR_SUCCESS) {
            break;
        }
        rv = as->finished ? APR_EINVAL : tool_delta(as, tc);
    }
    if (rv == APR_SUCCESS && json_is_string(finish) && !as->finished) {
        if (as->tool_pending) {
            return APR_EINVAL;      /* a tool call never named */
        }
        as->finished = 1;
        as->finish = apr_pstrdup(as->pool, json_string_value(finish));
        rv = close_block(as);
    }
    if (rv == APR_SUCCESS && as->finished && as->usage_final
        && !as->delta_sent) {
        rv = send_message_delta(as);
    }
    return rv;
}

static apr_status_t on_done(ark_anthropic_stream_t *as)
{
    apr_status_t rv = start_message(as, NULL);

    if (rv == APR_SUCCESS && as->tool_pending) {
        return APR_EINVAL;
    }
    if (rv == APR_SUCCESS) {
        rv = close_block(as);
    }
    if (rv == APR_SUCCESS && !as->delta_sent) {
        rv = send_message_delta(as);
    }
    as->ended = 1;
    if (rv == APR_SUCCESS) {
        rv = emit_event(as, "message_stop",
                        json_pack("{s:s}", "type", "message_stop"));
    }
    return rv;
}

/* An OpenAI error event ({"error":{"message","type",...}}) ends the
 * stream with the Anthropic error event. */
static apr_status_t on_error_chunk(ark_anthropic_stream_t *as,
                                   const json_t *error)
{
    ark_err_t e;
    const char *msg = json_string_value(json_object_get(error, "message"));

    ark_err_set(&e, status_for_openai_type(json_string_value(
                    json_object_get(error, "type"))),
                NULL, NULL, msg ? apr_pstrdup(as->scratch, msg)
                                : "The upstream provider failed while "
                                  "streaming the answer.");
    return ark_anthropic_stream_error(as, &e);
}

/* The data of one SSE event: its "data" lines joined by '\n' (NULL when
 * it has none: a comment). Lines end in LF, CRLF or CR. */
static const char *event_data(const char *ev, apr_size_t len,
                              apr_size_t *pdlen, apr_pool_t *p)
{
    char *data = NULL;
    apr_size_t dlen = 0, at = 0;

    while (at < len) {
        apr_size_t start = at, end, flen;
        const char *colon, *value;

        while (at < len && ev[at] != '\n' && ev[at] != '\r') {
            at++;
        }
        end = at;
        if (at < len && ev[at] == '\r' && at + 1 < len && ev[at + 1] == '\n') {
            at++;
        }
        at++;
        if (end == start || ev[start] == ':') {
            continue;
        }
        colon = memchr(ev + start, ':', end - start);
        flen = colon ? (apr_size_t)(colon - (ev + start)) : end - start;
        if (flen != 4 || memcmp(ev + start, "data", 4)) {
            continue;
        }
        value = colon ? colon + 1 : ev + end;
        if (value < ev + end && *value == ' ') {
            value++;
        }
        if (!data) {
            data = apr_palloc(p, len + 1);
        }
        else {
            data[dlen++] = '\n';
        }
        memcpy(data + dlen, value, (ev + end) - value);
        dlen += (ev + end) - value;
    }
    if (data) {
        data[dlen] = '\0';
    }
    *pdlen = dlen;
    return data;
}

/* A worked example: the OpenAI events
 *   {"id":"chatcmpl-7","choices":[{"index":0,"delta":{"role":"assistant",
 *     "content":""}}]}
 *   {... "delta":{"content":"Let me check."}}]}
 *   {... "delta":{"tool_calls":[{"index":0,"id":"call_1","type":
 *     "function","function":{"name":"get_weather","arguments":""}}]}}]}
 *   {... "delta":{"tool_calls":[{"index":0,"function":{"arguments":
 *     "{\"city\":\"Paris\"}"}}]}}]}
 *   {... "delta":{},"finish_reason":"tool_calls"}]}
 *   {"id":"chatcmpl-7","choices":[],"usage":{"prompt_tokens":20,
 *     "completion_tokens":9,"total_tokens":29}}
 *   [DONE]
 * become
 *   message_start (id msg_7, input_tokens 0), ping
 *   content_block_start 0 text, content_block_delta 0 "Let me check."
 *   content_block_stop 0, content_block_start 1 tool_use call_1
 *   content_block_delta 1 partial_json "{\"city\":\"Paris\"}"
 *   content_block_stop 1 (at the finish_reason)
 *   message_delta tool_use, input_tokens 20, output_tokens 9 (at usage)
 *   message_stop (at [DONE])
 */
apr_status_t ark_anthropic_stream_feed(ark_anthropic_stream_t *as,
                                       const char *event, apr_size_t len)
{
    const char *data;
    apr_size_t dlen;
    json_t *chunk;
    const json_t *error;
    apr_status_t rv;

    if (as->sticky) {
        return as->sticky;
    }
    if (as->ended) {
        return APR_SUCCESS;
    }
    apr_pool_clear(as->scratch);
    data = event_data(event, len, &dlen, as->scratch);
    if (!data) {
        return APR_SUCCESS;
    }
    if (dlen == 6 && !memcmp(data, "[DONE]", 6)) {
        return on_done(as);
    }
    chunk = json_loadb(data, dlen, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(chunk)) {
        json_decref(chunk);
        return APR_EINVAL;
    }
    error = json_object_get(chunk, "error");
    rv = error ? on_error_chunk(as, error) : on_chunk(as, chunk);
    json_decref(chunk);
    return rv;
}

apr_status_t ark_anthropic_stream_error(ark_anthropic_stream_t *as,
                                        const ark_err_t *e)
{
    if (as->sticky) {
        return as->sticky;
    }
    if (as->ended) {
        return APR_SUCCESS;
    }
    as->ended = 1;
    return emit_event(as, "error", error_object(e));
}
