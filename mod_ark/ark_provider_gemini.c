/* Provider type "gemini": Google's Gemini API (generativelanguage), spoken
 * on behalf of clients that speak OpenAI chat completions.
 *
 * Requests: the OpenAI body becomes a GenerateContentRequest, posted to
 *   <base>/models/<model>:generateContent
 *   <base>/models/<model>:streamGenerateContent?alt=sse      (streams)
 * with the key in an "x-goog-api-key" header, never in the URL (URLs end
 * up in logs). system and developer messages become systemInstruction;
 * user, tool and function messages turn into "user" contents, assistant
 * messages into "model" contents, consecutive contents of one role being
 * merged as Gemini expects alternating turns. Tool calls become
 * functionCall parts (arguments parsed into "args"; the first call of a
 * turn carries the placeholder thought signature Gemini 3 demands), tool
 * results become functionResponse parts named after the call they
 * answer, looked up by tool_call_id in the earlier assistant messages.
 * Sampling parameters go into generationConfig, tools into
 * functionDeclarations and tool_choice into toolConfig; JSON Schemas
 * (tool parameters, response_format) are passed as they are, in the
 * fields that take JSON Schema (parametersJsonSchema, responseJsonSchema).
 * Parameters Gemini has no equivalent for and that change nothing the
 * answer's shape depends on (logprobs, logit_bias, user, store, metadata,
 * service_tier, parallel_tool_calls, stream_options, ...) are dropped; a
 * request Gemini cannot express (n > 1, non-function tools, files by id,
 * image URLs other than http(s) and data:) is refused with a 400.
 *
 * Answers: a GenerateContentResponse becomes a chat.completion built
 * from the first candidate: text parts joined (thought summaries left
 * out), functionCall parts as tool_calls with ids
 * "call_<random part of the completion id>_<n>", finishReason mapped,
 * usageMetadata as usage (thinking tokens count as completion tokens). A
 * stream is a sequence of whole GenerateContentResponse objects, one per
 * SSE event, each turned into chat.completion.chunk events. Gemini sends
 * no end marker: the stream is complete when the upstream closes the
 * connection after an event carried a finishReason (stream_end).
 *
 * Example, the request
 *   {"model":"chat","messages":[{"role":"system","content":"Be brief."},
 *    {"role":"user","content":"Hi"}],"max_tokens":64}
 * is sent as
 *   {"systemInstruction":{"parts":[{"text":"Be brief."}]},
 *    "contents":[{"role":"user","parts":[{"text":"Hi"}]}],
 *    "generationConfig":{"maxOutputTokens":64}}
 */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "ark_provider.h"

/* Bounds of the max-tokens= option (maxOutputTokens when the client set
 * none); no Gemini model writes more than a million tokens. */
#define GEMINI_MAX_TOKENS_LIMIT 1000000

/* Gemini 3 models refuse a history whose function calls carry no thought
 * signature. OpenAI clients cannot keep the real signatures, so every
 * replayed model turn gets the placeholder Google documents for
 * histories "transferred from a different model". */
#define GEMINI_SKIP_SIGNATURE "skip_thought_signature_validator"

/* Longest Retry-After taken from a RetryInfo detail, in seconds. */
#define GEMINI_RETRY_MAX 3600

/* ---------------------------------------------------------- options */

/* Parses a decimal count of at most 9 digits. */
static apr_status_t parse_count(long *pn, const char *s)
{
    long n = 0;
    int digits = 0;

    for (; *s; s++) {
        if (!apr_isdigit(*s) || ++digits > 9) {
            return APR_EINVAL;
        }
        n = n * 10 + (*s - '0');
    }
    if (!digits) {
        return APR_EINVAL;
    }
    *pn = n;
    return APR_SUCCESS;
}

static const char *gemini_check_option(const char *name, const char *value,
                                       apr_pool_t *p)
{
    long n;

    if (strcmp(name, "max-tokens")) {
        return apr_psprintf(p, "unknown option '%s' for type gemini "
                            "(expected max-tokens=)", name);
    }
    if (parse_count(&n, value) != APR_SUCCESS || n < 1
        || n > GEMINI_MAX_TOKENS_LIMIT) {
        return apr_psprintf(p, "max-tokens='%s' is not a number between 1 "
                            "and %d", value, GEMINI_MAX_TOKENS_LIMIT);
    }
    return NULL;
}

/* ---------------------------------------------------- build_request */

/* The translation of one request under way. Everything built hangs off
 * `body`, so that releasing it releases all. */
typedef struct {
    json_t *messages;          /* the client's, borrowed */
    json_t *contents;          /* Gemini contents, owned by body */
    json_t *system;            /* systemInstruction parts, or NULL */
    json_t *body;
    ark_err_t *err;
    apr_pool_t *p;
} gem_build_t;

/* Sets a 400 for the client and returns APR_EINVAL. */
static apr_status_t refuse(gem_build_t *b, const char *code,
                           const char *param, const char *message)
{
    ark_err_set(b->err, 400, code, param, message);
    return APR_EINVAL;
}

static int prefix_nocase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        if (apr_tolower(*s) != apr_tolower(*prefix)) {
            return 0;
        }
    }
    return 1;
}

static int role_is(const json_t *msg, const char *role)
{
    const json_t *r = json_object_get(msg, "role");

    return json_is_string(r) && !strcmp(json_string_value(r), role);
}

/* Appends parts (stolen) as a content of role, merged into the last
 * content when that has the same role. No parts: nothing is added. */
static void add_content(gem_build_t *b, const char *role, json_t *parts)
{
    json_t *last = json_array_get(b->contents,
                                  json_array_size(b->contents) - 1);

    if (json_array_size(parts) == 0) {
        json_decref(parts);
        return;
    }
    if (last && role_is(last, role)) {
        json_array_extend(json_object_get(last, "parts"), parts);
        json_decref(parts);
        return;
    }
    json_array_append_new(b->contents,
                          json_pack("{s:s,s:o}", "role", role,
                                    "parts", parts));
}

/* A {"text": ...} part sharing the client's string (NULs and all). */
static json_t *text_part(json_t *text)
{
    json_t *part = json_object();

    json_object_set(part, "text", text);
    return part;
}

/* MIME type of an http(s) image URL from the extension of its last path
 * segment; image/jpeg when the extension says nothing. */
static const char *image_mime_guess(const char *url)
{
    static const char *const types[][2] = {
        { "png", "image/png" }, { "jpg", "image/jpeg" },
        { "jpeg", "image/jpeg" }, { "webp", "image/webp" },
        { "gif", "image/gif" }, { "heic", "image/heic" },
        { "heif", "image/heif" },
    };
    const char *s = strstr(url, "://"), *end, *name = NULL, *ext = NULL;
    apr_size_t i, n;

    s = s ? s + 3 : url;
    end = s + strcspn(s, "?#");
    for (; s < end; s++) {
        if (*s == '/') {
            name = s + 1;
            ext = NULL;
        }
        else if (*s == '.' && name) {
            ext = s + 1;
        }
    }
    if (!ext) {
        return "image/jpeg";
    }
    n = (apr_size_t)(end - ext);
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strlen(types[i][0]) == n && prefix_nocase(ext, types[i][0])) {
            return types[i][1];
        }
    }
    return "image/jpeg";
}

/* An inlineData part from a "data:<mime>[;...];base64,<data>" URL. */
static apr_status_t data_url_part(json_t **ppart, gem_build_t *b,
                                  const char *url, const char *param)
{
    const char *head = url + 5, *comma = strchr(url, ',');
    apr_size_t mlen;

    if (!comma || comma - head < 7 || !prefix_nocase(comma - 7, ";base64")
        || !comma[1]) {
        return refuse(b, "invalid_value", param,
                      apr_psprintf(b->p, "Invalid value for '%s': a data "
                                   "URL must be base64-encoded "
                                   "(data:<type>;base64,<data>).", param));
    }
    mlen = strcspn(head, ";,");
    if (mlen == 0) {
        return refuse(b, "invalid_value", param,
                      apr_psprintf(b->p, "Invalid value for '%s': the data "
                                   "URL does not name a media type.",
                                   param));
    }
    *ppart = json_pack("{s:{s:s%,s:s}}", "inlineData", "mimeType", head,
                       mlen, "data", comma + 1);
    return APR_SUCCESS;
}

/* The part for an image URL: inline data, or a file reference. */
static apr_status_t image_part(json_t **ppart, gem_build_t *b,
                               const json_t *image, const char *param)
{
    const json_t *url = json_is_object(image)
                        ? json_object_get(image, "url") : image;
    const char *u;

    param = apr_pstrcat(b->p, param, ".image_url", NULL);
    if (!json_is_string(url)) {
        return refuse(b, "invalid_type", param,
                      apr_psprintf(b->p, "Invalid type for '%s': expected "
                                   "an object with a 'url' string.", param));
    }
    u = json_string_value(url);
    if (prefix_nocase(u, "data:")) {
        return data_url_part(ppart, b, u, param);
    }
    if (prefix_nocase(u, "https://") || prefix_nocase(u, "http://")) {
        *ppart = json_pack("{s:{s:s,s:s}}", "fileData",
                           "mimeType", image_mime_guess(u), "fileUri", u);
        return APR_SUCCESS;
    }
    return refuse(b, "invalid_value", param,
                  apr_psprintf(b->p, "Invalid value for '%s': expected an "
                               "http(s) URL or a base64 data URL.", param));
}

/* The part for {"type":"input_audio","input_audio":{"data","format"}}. */
static apr_status_t audio_part(json_t **ppart, gem_build_t *b,
                               const json_t *audio, const char *param)
{
    const json_t *data = json_object_get(audio, "data");
    const json_t *format = json_object_get(audio, "format");

    if (!json_is_string(data) || !json_is_string(format)
        || !json_string_length(format)) {
        param = apr_pstrcat(b->p, param, ".input_audio", NULL);
        return refuse(b, "invalid_type", param,
                      apr_psprintf(b->p, "Invalid type for '%s': expected "
                                   "an object with 'data' and 'format' "
                                   "strings.", param));
    }
    *ppart = json_pack("{s:{s:s,s:O}}", "inlineData", "mimeType",
                       apr_pstrcat(b->p, "audio/",
                                   json_string_value(format), NULL),
                       "data", data);
    return APR_SUCCESS;
}

/* The part for {"type":"file","file":{"file_data":"data:..."}}. */
static apr_status_t file_part(json_t **ppart, gem_build_t *b,
                              const json_t *file, const char *param)
{
    const json_t *data = json_object_get(file, "file_data");

    param = apr_pstrcat(b->p, param, ".file", NULL);
    if (json_is_string(data)
        && prefix_nocase(json_string_value(data), "data:")) {
        return data_url_part(ppart, b, json_string_value(data),
                             apr_pstrcat(b->p, param, ".file_data", NULL));
    }
    return refuse(b, "unsupported_value", param,
                  apr_psprintf(b->p, "Unsupported value for '%s': only "
                               "files given inline as a base64 data URL "
                               "in 'file_data' can be sent to this model.",
                               param));
}

/* Parts of a message's content. user: text, image_url, input_audio and
 * file parts; others (system, developer, assistant, tool): text only
 * (an assistant's refusal counts as text). */
static apr_status_t content_parts(json_t **pparts, gem_build_t *b,
                                  const json_t *content, int user,
                                  const char *param)
{
    json_t *parts = json_array(), *item;
    size_t i;

    *pparts = parts;
    if (json_is_string(content)) {
        if (json_string_length(content)) {
            json_array_append_new(parts, text_part((json_t *)content));
        }
        return APR_SUCCESS;
    }
    if (!json_is_array(content)) {
        return APR_SUCCESS;     /* null or absent; validated upstream */
    }
    json_array_foreach(content, i, item) {
        const char *ip = apr_psprintf(b->p, "%s[%lu]", param,
                                      (unsigned long)i);
        const json_t *type = json_object_get(item, "type");
        const char *t = json_is_string(type) ? json_string_value(type) : "";
        json_t *part = NULL;
        apr_status_t rv = APR_SUCCESS;

        if (!strcmp(t, "text") || (!user && !strcmp(t, "refusal"))) {
            json_t *text = json_object_get(item, t);

            if (!json_is_string(text)) {
                ip = apr_pstrcat(b->p, ip, ".", t, NULL);
                return refuse(b, "invalid_type", ip,
                              apr_psprintf(b->p, "Invalid type for '%s': "
                                           "expected a string.", ip));
            }
            if (json_string_length(text)) {
                part = text_part(text);
            }
        }
        else if (user && !strcmp(t, "image_url")) {
            rv = image_part(&part, b, json_object_get(item, "image_url"), ip);
        }
        else if (user && !strcmp(t, "input_audio")) {
            rv = audio_part(&part, b, json_object_get(item, "input_audio"),
                            ip);
        }
        else if (user && !strcmp(t, "file")) {
            rv = file_part(&part, b, json_object_get(item, "file"), ip);
        }
        else {
            ip = apr_pstrcat(b->p, ip, ".type", NULL);
            return refuse(b, "unsupported_value", ip,
                          apr_psprintf(b->p, "Unsupported value for '%s': "
                                       "'%s' content parts cannot be sent "
                                       "to this model.", ip,
                                       ark_err_quote(t, 32, b->p)));
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (part) {
            json_array_append_new(parts, part);
        }
    }
    return APR_SUCCESS;
}

/* A functionCall part for a call of name with arguments (a JSON string:
 * an object, or empty for none). */
static apr_status_t call_part(json_t **ppart, gem_build_t *b,
                              const json_t *name, const json_t *arguments,
                              const char *param)
{
    json_t *args = NULL;
    const char *ap = apr_pstrcat(b->p, param, ".arguments", NULL);
    const char *s;

    if (!json_is_string(name) || !json_string_length(name)) {
        param = apr_pstrcat(b->p, param, ".name", NULL);
        return refuse(b, "invalid_type", param,
                      apr_psprintf(b->p, "Invalid type for '%s': expected a "
                                   "non-empty string.", param));
    }
    if (arguments && !json_is_null(arguments)
        && !json_is_string(arguments)) {
        return refuse(b, "invalid_type", ap,
                      apr_psprintf(b->p, "Invalid type for '%s': expected a "
                                   "string of JSON.", ap));
    }
    s = json_is_string(arguments) ? json_string_value(arguments) : "";
    if (s[strspn(s, " \t\r\n")] == '\0') {
        args = json_object();
    }
    else {
        args = json_loadb(s, json_string_length(arguments),
                          JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(args)) {
            json_decref(args);
            return refuse(b, "invalid_value", ap,
                          apr_psprintf(b->p, "Invalid value for '%s': "
                                       "expected a JSON object.", ap));
        }
    }
    *ppart = json_pack("{s:{s:O,s:o}}", "functionCall", "name", name,
                       "args", args);
    return APR_SUCCESS;
}

/* The parts of an assistant message: its text, then its calls. */
static apr_status_t assistant_parts(json_t **pparts, gem_build_t *b,
                                    const json_t *msg, const char *param)
{
    const json_t *calls = json_object_get(msg, "tool_calls");
    const json_t *legacy = json_object_get(msg, "function_call");
    json_t *parts, *tc, *part;
    size_t first, j;
    apr_status_t rv;

    rv = content_parts(pparts, b, json_object_get(msg, "content"), 0,
                       apr_pstrcat(b->p, param, ".content", NULL));
    parts = *pparts;
    first = json_array_size(parts);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (calls && !json_is_null(calls) && !json_is_array(calls)) {
        param = apr_pstrcat(b->p, param, ".tool_calls", NULL);
        return refuse(b, "invalid_type", param,
                      apr_psprintf(b->p, "Invalid type for '%s': expected "
                                   "an array.", param));
    }
    json_array_foreach(calls, j, tc) {
        const char *cp = apr_psprintf(b->p, "%s.tool_calls[%lu]", param,
                                      (unsigned long)j);
        const json_t *fn = json_object_get(tc, "function");
        const json_t *type = json_object_get(tc, "type");

        if (type && !(json_is_string(type)
                      && !strcmp(json_string_value(type), "function"))) {
            cp = apr_pstrcat(b->p, cp, ".type", NULL);
            return refuse(b, "unsupported_value", cp,
                          apr_psprintf(b->p, "Unsupported value for '%s': "
                                       "only function calls can be sent "
                                       "to this model.", cp));
        }
        rv = call_part(&part, b, json_object_get(fn, "name"),
                       json_object_get(fn, "arguments"),
                       apr_pstrcat(b->p, cp, ".function", NULL));
        if (rv != APR_SUCCESS) {
            return rv;
        }
        json_array_append_new(parts, part);
    }
    if (json_is_object(legacy)) {
        rv = call_part(&part, b, json_object_get(legacy, "name"),
                       json_object_get(legacy, "arguments"),
                       apr_pstrcat(b->p, param, ".function_call", NULL));
        if (rv != APR_SUCCESS) {
            return rv;
        }
        json_array_append_new(parts, part);
    }
    part = json_array_get(parts, first);
    if (part) {
        json_object_set_new(part, "thoughtSignature",
                            json_string(GEMINI_SKIP_SIGNATURE));
    }
    return APR_SUCCESS;
}

/* The function name of the tool call with id, from the assistant
 * messages before message `before` (the latest such call), or NULL. */
static const json_t *tool_call_name(const json_t *messages, size_t before,
                                    const char *id)
{
    size_t i = before, j;

    while (i-- > 0) {
        const json_t *msg = json_array_get(messages, i);
        const json_t *calls = json_object_get(msg, "tool_calls");
        json_t *tc;

        if (!role_is(msg, "assistant") || !json_is_array(calls)) {
            continue;
        }
        json_array_foreach(calls, j, tc) {
            const json_t *tid = json_object_get(tc, "id");
            const json_t *name = json_object_get(
                json_object_get(tc, "function"), "name");

            if (json_is_string(tid) && !strcmp(json_string_value(tid), id)
                && json_is_string(name)) {
                return name;
            }
        }
    }
    return NULL;
}

/* A functionResponse part for the result of a call of name, the content
 * of the tool message (its text parts joined by newlines). */
static apr_status_t response_part(json_t **ppart, gem_build_t *b,
                                  const json_t *name, const json_t *msg,
                                  const char *param)
{
    json_t *parts, *part, *result;
    size_t k;
    apr_status_t rv;

    rv = content_parts(&parts, b, json_object_get(msg, "content"), 0,
                       apr_pstrcat(b->p, param, ".content", NULL));
    if (rv != APR_SUCCESS) {
        json_decref(parts);
        return rv;
    }
    if (json_array_size(parts) == 1) {
        result = json_incref(json_object_get(json_array_get(parts, 0),
                                             "text"));
    }
    else {
        const char *s = "";

        json_array_foreach(parts, k, part) {
            s = apr_pstrcat(b->p, s, k ? "\n" : "",
                            json_string_value(json_object_get(part, "text")),
                            NULL);
        }
        result = json_string(s);
    }
    json_decref(parts);
    *ppart = json_pack("{s:{s:O,s:{s:o}}}", "functionResponse", "name", name,
                       "response", "content", result);
    return APR_SUCCESS;
}

/* Translates messages[i] into b->contents or b->system. */
static apr_status_t add_message(gem_build_t *b, size_t i)
{
    const json_t *msg = json_array_get(b->messages, i);
    const char *role = json_string_value(json_object_get(msg, "role"));
    const char *param = apr_psprintf(b->p, "messages[%lu]",
                                     (unsigned long)i);
    json_t *parts = NULL, *part = NULL;
    apr_status_t rv;

    if (!strcmp(role, "system") || !strcmp(role, "developer")) {
        rv = content_parts(&parts, b, json_object_get(msg, "content"), 0,
                           apr_pstrcat(b->p, param, ".content", NULL));
        if (rv == APR_SUCCESS) {
            json_array_extend(b->system, parts);
        }
        json_decref(parts);
        return rv;
    }
    if (!strcmp(role, "user")) {
        rv = content_parts(&parts, b, json_object_get(msg, "content"), 1,
                           apr_pstrcat(b->p, param, ".content", NULL));
    }
    else if (!strcmp(role, "assistant")) {
        rv = assistant_parts(&parts, b, msg, param);
    }
    else {
        /* tool (or the older "function"): the answer to a call */
        const json_t *id = json_object_get(msg, "tool_call_id");
        const json_t *name;
        int tool = !strcmp(role, "tool");

        if (tool) {
            param = apr_pstrcat(b->p, param, ".tool_call_id", NULL);
            if (!json_is_string(id)) {
                return refuse(b, "invalid_type", param,
                              apr_psprintf(b->p, "Invalid type for '%s': "
                                           "expected a string.", param));
            }
            name = tool_call_name(b->messages, i, json_string_value(id));
            if (!name) {
                return refuse(b, "invalid_value", param,
                              apr_psprintf(b->p, "Invalid value for '%s': "
                                           "no earlier assistant message "
                                           "has a tool call with id '%s'.",
                                           param,
                                           ark_err_quote(
                                               json_string_value(id), 64,
                                               b->p)));
            }
        }
        else {
            name = json_object_get(msg, "name");
            if (!json_is_string(name) || !json_string_length(name)) {
                param = apr_pstrcat(b->p, param, ".name", NULL);
                return refuse(b, "invalid_type", param,
                              apr_psprintf(b->p, "Invalid type for '%s': "
                                           "expected a non-empty string.",
                                           param));
            }
        }
        rv = response_part(&part, b, name, msg,
                           apr_psprintf(b->p, "messages[%lu]",
                                        (unsigned long)i));
        if (rv == APR_SUCCESS) {
            parts = json_pack("[o]", part);
        }
    }
    if (rv != APR_SUCCESS) {
        json_decref(parts);
        return rv;
    }
    add_content(b, !strcmp(role, "assistant") ? "model" : "user", parts);
    return APR_SUCCESS;
}

/* Copies the number root[from] into config[to]; null or absent: none.
 * integer: only integers are accepted. */
static apr_status_t copy_number(gem_build_t *b, json_t *config,
                                const json_t *root, const char *from,
                                const char *to, int integer)
{
    json_t *v = json_object_get(root, from);

    if (!v || json_is_null(v)) {
        return APR_SUCCESS;
    }
    if (integer ? !json_is_integer(v) : !json_is_number(v)) {
        return refuse(b, "invalid_type", from,
                      apr_psprintf(b->p, "Invalid type for '%s': expected "
                                   "%s.", from, integer ? "an integer"
                                                        : "a number"));
    }
    json_object_set(config, to, v);
    return APR_SUCCESS;
}

/* maxOutputTokens: max_completion_tokens, max_tokens or the provider's
 * max-tokens= option, the first one set. */
static apr_status_t add_max_tokens(gem_build_t *b, json_t *config,
                                   const json_t *root,
                                   const ark_provider_t *prov)
{
    static const char *const names[] = { "max_completion_tokens",
                                         "max_tokens" };
    const char *opt = prov->options
                      ? apr_table_get(prov->options, "max-tokens") : NULL;
    long n;
    int i;

    for (i = 0; i < 2; i++) {
        const json_t *v = json_object_get(root, names[i]);

        if (!v || json_is_null(v)) {
            continue;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            return refuse(b, "invalid_value", names[i],
                          apr_psprintf(b->p, "Invalid value for '%s': "
                                       "expected a positive integer.",
                                       names[i]));
        }
        json_object_set(config, "maxOutputTokens", (json_t *)v);
        return APR_SUCCESS;
    }
    if (opt && parse_count(&n, opt) == APR_SUCCESS) {
        json_object_set_new(config, "maxOutputTokens",
                            json_integer((json_int_t)n));
    }
    return APR_SUCCESS;
}

/* stopSequences from "stop" (a string or an array of strings). */
static apr_status_t add_stop(gem_build_t *b, json_t *config,
                             const json_t *root)
{
    json_t *stop = json_object_get(root, "stop"), *s;
    size_t i;

    if (!stop || json_is_null(stop)) {
        return APR_SUCCESS;
    }
    if (json_is_string(stop)) {
        json_object_set_new(config, "stopSequences", json_pack("[O]", stop));
        return APR_SUCCESS;
    }
    if (json_is_array(stop)) {
        json_array_foreach(stop, i, s) {
            if (!json_is_string(s)) {
                break;
            }
        }
        if (i == json_array_size(stop)) {
            if (i > 0) {
                json_object_set(config, "stopSequences", stop);
            }
            return APR_SUCCESS;
        }
    }
    return refuse(b, "invalid_type", "stop",
                  "Invalid type for 'stop': expected a string or an array "
                  "of strings.");
}

/* candidateCount from "n": Gemini may answer several candidates, but
 * the translation (and streaming) covers one. */
static apr_status_t add_n(gem_build_t *b, json_t *config, const json_t *root)
{
    const json_t *n = json_object_get(root, "n");

    if (!n || json_is_null(n)) {
        return APR_SUCCESS;
    }
    if (!json_is_integer(n) || json_integer_value(n) < 1) {
        return refuse(b, "invalid_value", "n",
                      "Invalid value for 'n': expected a positive "
                      "integer.");
    }
    if (json_integer_value(n) > 1) {
        return refuse(b, "unsupported_value", "n",
                      "Unsupported value for 'n': this model returns one "
                      "choice per request; send 'n' = 1 or leave it out.");
    }
    json_object_set_new(config, "candidateCount", json_integer(1));
    return APR_SUCCESS;
}

/* responseMimeType (and responseJsonSchema) from "response_format". */
static apr_status_t add_response_format(gem_build_t *b, json_t *config,
                                        const json_t *root)
{
    const json_t *rf = json_object_get(root, "response_format");
    const json_t *type, *schema;
    const char *t;

    if (!rf || json_is_null(rf)) {
        return APR_SUCCESS;
    }
    type = json_object_get(rf, "type");
    t = json_is_string(type) ? json_string_value(type) : "";
    if (!strcmp(t, "text")) {
        return APR_SUCCESS;
    }
    if (!strcmp(t, "json_object") || !strcmp(t, "json_schema")) {
        json_object_set_new(config, "responseMimeType",
                            json_string("application/json"));
        schema = json_object_get(json_object_get(rf, "json_schema"),
                                 "schema");
        if (json_is_object(schema)) {
            json_object_set(config, "responseJsonSchema", (json_t *)schema);
        }
        return APR_SUCCESS;
    }
    return refuse(b, "invalid_value", "response_format.type",
                  "Invalid value for 'response_format.type': expected "
                  "'text', 'json_object' or 'json_schema'.");
}

static apr_status_t add_generation_config(gem_build_t *b,
                                          const json_t *root,
                                          const ark_provider_t *prov)
{
    json_t *config = json_object();
    apr_status_t rv;

    json_object_set_new(b->body, "generationConfig", config);
    if ((rv = copy_number(b, config, root, "temperature", "temperature", 0))
        || (rv = copy_number(b, config, root, "top_p", "topP", 0))
        || (rv = copy_number(b, config, root, "top_k", "topK", 1))
        || (rv = add_max_tokens(b, config, root, prov))
        || (rv = add_stop(b, config, root))
        || (rv = add_n(b, config, root))
        || (rv = copy_number(b, config, root, "presence_penalty",
                             "presencePenalty", 0))
        || (rv = copy_number(b, config, root, "frequency_penalty",
                             "frequencyPenalty", 0))
        || (rv = copy_number(b, config, root, "seed", "seed", 1))
        || (rv = add_response_format(b, config, root))) {
        return rv;
    }
    if (json_object_size(config) == 0) {
        json_object_del(b->body, "generationConfig");
    }
    return APR_SUCCESS;
}

/* One functionDeclaration from an OpenAI function definition. */
static apr_status_t add_declaration(gem_build_t *b, json_t *decls,
                                    const json_t *fn, const char *param)
{
    const json_t *name = json_object_get(fn, "name");
    const json_t *desc = json_object_get(fn, "description");
    const json_t *params = json_object_get(fn, "parameters");
    json_t *decl;

    if (!json_is_string(name) || !json_string_length(name)) {
        param = apr_pstrcat(b->p, param, ".name", NULL);
        return refuse(b, "invalid_type", param,
                      apr_psprintf(b->p, "Invalid type for '%s': expected "
                                   "a non-empty string.", param));
    }
    decl = json_pack("{s:O}", "name", name);
    if (json_is_string(desc)) {
        json_object_set(decl, "description", (json_t *)desc);
    }
    if (json_is_object(params)) {
        json_object_set(decl, "parametersJsonSchema", (json_t *)params);
    }
    json_array_append_new(decls, decl);
    return APR_SUCCESS;
}

/* The functionCallingConfig for an OpenAI tool_choice (or the older
 * function_call), or NULL with *prv set. */
static json_t *calling_config(gem_build_t *b, const json_t *choice,
                              const char *param, apr_status_t *prv)
{
    const json_t *name = NULL;

    *prv = APR_SUCCESS;
    if (json_is_string(choice)) {
        const char *c = json_string_value(choice);

        if (!strcmp(c, "auto")) {
            return json_pack("{s:s}", "mode", "AUTO");
        }
        if (!strcmp(c, "none")) {
            return json_pack("{s:s}", "mode", "NONE");
        }
        if (!strcmp(c, "required") && !strcmp(param, "tool_choice")) {
            return json_pack("{s:s}", "mode", "ANY");
        }
    }
    else if (json_is_object(choice)) {
        const json_t *type = json_object_get(choice, "type");

        if (!strcmp(param, "function_call")) {
            name = json_object_get(choice, "name");
        }
        else if (json_is_string(type)
                 && !strcmp(json_string_value(type), "function")) {
            name = json_object_get(json_object_get(choice, "function"),
                                   "name");
        }
        if (json_is_string(name)) {
            return json_pack("{s:s,s:[O]}", "mode", "ANY",
                             "allowedFunctionNames", name);
        }
    }
    *prv = refuse(b, "invalid_value", param,
                  apr_psprintf(b->p, "Invalid value for '%s': expected "
                               "'none', 'auto', %sor a named function.",
                               param, strcmp(param, "tool_choice")
                                      ? "" : "'required' "));
    return NULL;
}

/* tools and toolConfig from "tools"/"tool_choice" (or the older
 * "functions"/"function_call"). */
static apr_status_t add_tools(gem_build_t *b, const json_t *root)
{
    const json_t *tools = json_object_get(root, "tools");
    const json_t *functions = json_object_get(root, "functions");
    const json_t *choice = json_object_get(root, "tool_choice");
    const char *cname = "tool_choice";
    json_t *decls = json_array(), *t, *config;
    size_t i;
    apr_status_t rv;

    json_object_set_new(b->body, "tools",
                        json_pack("[{s:o}]", "functionDeclarations", decls));
    if (tools && !json_is_null(tools) && !json_is_array(tools)) {
        return refuse(b, "invalid_type", "tools",
                      "Invalid type for 'tools': expected an array.");
    }
    json_array_foreach(tools, i, t) {
        const char *tp = apr_psprintf(b->p, "tools[%lu]", (unsigned long)i);
        const json_t *type = json_object_get(t, "type");

        if (!json_is_string(type)
            || strcmp(json_string_value(type), "function")) {
            tp = apr_pstrcat(b->p, tp, ".type", NULL);
            return refuse(b, "unsupported_value", tp,
                          apr_psprintf(b->p, "Unsupported value for '%s': "
                                       "only function tools can be sent "
                                       "to this model.", tp));
        }
        rv = add_declaration(b, decls, json_object_get(t, "function"),
                             apr_pstrcat(b->p, tp, ".function", NULL));
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    json_array_foreach(functions, i, t) {
        rv = add_declaration(b, decls, t,
                             apr_psprintf(b->p, "functions[%lu]",
                                          (unsigned long)i));
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    if (json_array_size(decls) == 0) {
        json_object_del(b->body, "tools");
        return APR_SUCCESS;
    }
    if (!choice || json_is_null(choice)) {
        choice = json_object_get(root, "function_call");
        cname = "function_call";
    }
    if (choice && !json_is_null(choice)) {
        config = calling_config(b, choice, cname, &rv);
        if (!config) {
            return rv;
        }
        json_object_set_new(b->body, "toolConfig",
                            json_pack("{s:o}", "functionCallingConfig",
                                      config));
    }
    return APR_SUCCESS;
}

/* The GenerateContentRequest for req into b->body. */
static apr_status_t translate_request(gem_build_t *b, const ark_req_t *req,
                                      const ark_provider_t *prov)
{
    size_t i;
    apr_status_t rv;

    b->system = json_array();
    json_object_set_new(b->body, "systemInstruction",
                        json_pack("{s:o}", "parts", b->system));
    b->contents = json_array();
    json_object_set_new(b->body, "contents", b->contents);
    b->messages = json_object_get(req->root, "messages");
    for (i = 0; i < json_array_size(b->messages); i++) {
        if ((rv = add_message(b, i)) != APR_SUCCESS) {
            return rv;
        }
    }
    if (json_array_size(b->contents) == 0) {
        return refuse(b, "invalid_value", "messages",
                      "Invalid value for 'messages': this model needs at "
                      "least one user or assistant message with content.");
    }
    if (json_array_size(b->system) == 0) {
        json_object_del(b->body, "systemInstruction");
    }
    if ((rv = add_tools(b, req->root)) != APR_SUCCESS) {
        return rv;
    }
    return add_generation_config(b, req->root, prov);
}

static apr_status_t gemini_build_request(ark_upstream_req_t *out,
                                         const ark_provider_t *prov,
                                         const char *upstream_model,
                                         const ark_req_t *req,
                                         ark_err_t *err, apr_pool_t *p)
{
    gem_build_t b;
    const char *model = upstream_model;
    apr_status_t rv;

    if (req->endpoint != ARK_ENDPOINT_CHAT) {
        ark_err_set(err, 400, "unsupported_endpoint", NULL,
                    "This model serves chat completions only.");
        return APR_ENOTIMPL;
    }
    memset(&b, 0, sizeof(b));
    b.body = json_object();
    b.err = err;
    b.p = p;
    rv = translate_request(&b, req, prov);
    if (rv == APR_SUCCESS) {
        out->body = ark_json_pdump(b.body, &out->body_len, p);
        if (!out->body) {
            ark_err_set(err, 500, "internal_error", NULL,
                        "The gateway could not encode the upstream "
                        "request.");
            rv = APR_ENOMEM;
        }
    }
    json_decref(b.body);
    if (rv != APR_SUCCESS) {
        return rv;
    }

    /* "models/gemini-2.5-flash" and "gemini-2.5-flash" name one model */
    if (!strncmp(model, "models/", 7)) {
        model += 7;
    }
    out->url = apr_pstrcat(p, prov->base_url, "/models/",
                           ark_url_escape_segment(model, p),
                           req->stream ? ":streamGenerateContent?alt=sse"
                                       : ":generateContent", NULL);
    out->headers = ark_upstream_headers(req->stream, "x-goog-api-key", "",
                                        prov->secret, p);
    return APR_SUCCESS;
}

/* --------------------------------------------------------- answers */

static int take_count(long *dst, const json_t *obj, const char *field)
{
    const json_t *v = json_object_get(obj, field);

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *dst = (long)json_integer_value(v);
        return 1;
    }
    *dst = 0;
    return 0;
}

/* Reads a usageMetadata object into *u; counts it lacks stay as they
 * were. Thinking tokens are output tokens, and prompt tokens of tools
 * input tokens, as Gemini bills them. */
static void usage_from_gemini(ark_usage_t *u, const json_t *um)
{
    long prompt, tool, out, thoughts, n;
    int has_prompt, has_tool, has_out, has_thoughts;

    if (!json_is_object(um)) {
        return;
    }
    has_prompt = take_count(&prompt, um, "promptTokenCount");
    has_tool = take_count(&tool, um, "toolUsePromptTokenCount");
    has_out = take_count(&out, um, "candidatesTokenCount");
    has_thoughts = take_count(&thoughts, um, "thoughtsTokenCount");
    if (has_prompt || has_tool) {
        u->prompt_tokens = prompt + tool;
    }
    if (has_out || has_thoughts) {
        u->completion_tokens = out + thoughts;
    }
    if (take_count(&n, um, "totalTokenCount")) {
        u->total_tokens = n;
    }
    if (take_count(&n, um, "cachedContentTokenCount")) {
        u->cached_tokens = n;
    }
}

/* The OpenAI finish_reason for a Gemini finishReason. */
static const char *finish_reason(const char *reason, int tool_calls)
{
    static const char *const filtered[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
        "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
        NULL
    };
    int i;

    if (!strcmp(reason, "STOP")) {
        return tool_calls ? "tool_calls" : "stop";
    }
    if (!strcmp(reason, "MAX_TOKENS")) {
        return "length";
    }
    for (i = 0; filtered[i]; i++) {
        if (!strcmp(reason, filtered[i])) {
            return "content_filter";
        }
    }
    return "stop";
}

/* "call_<the completion id's random part>_<index>": unique, and the
 * same for a call in every chunk. */
static const char *tool_call_id(const char *completion_id, int index,
                                apr_pool_t *p)
{
    if (completion_id && !strncmp(completion_id, "chatcmpl-", 9)) {
        completion_id += 9;
    }
    return apr_psprintf(p, "call_%s_%d",
                        completion_id ? completion_id : "ark", index);
}

/* The OpenAI tool call for a functionCall object (arguments: its args
 * as compact JSON, "{}" when it has none), or NULL when it has no
 * name. */
static json_t *tool_call_make(const json_t *fc, const char *id)
{
    const json_t *name = json_object_get(fc, "name");
    const json_t *args = json_object_get(fc, "args");
    char *text;
    json_t *call;

    if (!json_is_string(name)) {
        return NULL;
    }
    text = json_is_object(args) ? json_dumps(args, JSON_COMPACT) : NULL;
    call = json_pack("{s:s,s:s,s:{s:O,s:s}}", "id", id, "type", "function",
                     "function", "name", name, "arguments",
                     text ? text : "{}");
    free(text);
    return call;
}

static int part_is_thought(const json_t *part)
{
    return json_is_true(json_object_get(part, "thought"));
}

/* The assistant message for a candidate's parts: the text parts joined
 * (null when there is no text), the functionCall parts as tool_calls
 * with ids made from id. *pcalls: the number of calls. NULL when a call
 * has no name. */
static json_t *message_make(const json_t *parts, const char *id,
                            size_t *pcalls, apr_pool_t *p)
{
    json_t *calls = json_array(), *msg;
    const json_t *part;
    apr_size_t total = 0, at = 0;
    char *text;
    size_t i;

    json_array_foreach(parts, i, part) {
        const json_t *t = json_object_get(part, "text");

        if (json_is_string(t) && !part_is_thought(part)) {
            total += json_string_length(t);
        }
    }
    text = apr_palloc(p, total + 1);
    json_array_foreach(parts, i, part) {
        const json_t *t = json_object_get(part, "text");
        const json_t *fc = json_object_get(part, "functionCall");

        if (json_is_string(t) && !part_is_thought(part)) {
            memcpy(text + at, json_string_value(t), json_string_length(t));
            at += json_string_length(t);
        }
        else if (json_is_object(fc)) {
            json_t *call = tool_call_make(
                fc, tool_call_id(id, (int)json_array_size(calls), p));

            if (!call) {
                json_decref(calls);
                return NULL;
            }
            json_array_append_new(calls, call);
        }
    }
    msg = json_pack("{s:s,s:o}", "role", "assistant", "content",
                    at ? json_stringn(text, at) : json_null());
    if (msg && json_array_size(calls)) {
        json_object_set(msg, "tool_calls", calls);
    }
    *pcalls = json_array_size(calls);
    json_decref(calls);
    return msg;
}

static apr_status_t gemini_parse_response(const char **pbody,
                                          apr_size_t *plen,
                                          ark_usage_t *usage,
                                          const ark_req_t *req,
                                          const char *body, apr_size_t len,
                                          apr_pool_t *p)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    json_t *message, *out;
    const json_t *cands, *cand, *parts, *reason, *feedback, *version, *um;
    const char *id = ark_completion_id_make(p), *finish = "stop";
    ark_usage_t u;
    size_t calls = 0;
    apr_status_t rv = APR_EINVAL;

    (void)req;
    cands = json_object_get(root, "candidates");
    feedback = json_object_get(root, "promptFeedback");
    cand = json_array_get(cands, 0);
    parts = json_object_get(json_object_get(cand, "content"), "parts");
    if (!json_is_object(root) || (cands && !json_is_array(cands))
        || (!cands && !json_is_object(feedback))
        || (cand && !json_is_object(cand))
        || (parts && !json_is_array(parts))) {
        json_decref(root);
        return APR_EINVAL;
    }
    message = message_make(parts, id, &calls, p);
    if (!message) {
        json_decref(root);
        return APR_EINVAL;
    }
    reason = json_object_get(cand, "finishReason");
    if (json_is_string(reason)) {
        finish = finish_reason(json_string_value(reason), calls > 0);
    }
    else if (!cand && json_is_string(json_object_get(feedback,
                                                     "blockReason"))) {
        finish = "content_filter";   /* the prompt itself was blocked */
    }
    else if (calls) {
        finish = "tool_calls";
    }

    um = json_object_get(root, "usageMetadata");
    ark_usage_clear(&u);
    usage_from_gemini(&u, um);
    usage_from_gemini(usage, um);
    version = json_object_get(root, "modelVersion");
    out = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s}],s:o}",
                    "id", id, "object", "chat.completion",
                    "created", (json_int_t)apr_time_sec(apr_time_now()),
                    "model", json_is_string(version)
                             ? json_string_value(version) : "",
                    "choices", "index", 0, "message", message, "logprobs",
                    "finish_reason", finish,
                    "usage", ark_usage_to_openai(&u));
    if (out) {
        *pbody = ark_json_pdump(out, plen, p);
        rv = *pbody ? APR_SUCCESS : APR_ENOMEM;
        json_decref(out);
    }
    json_decref(root);
    return rv;
}

/* ---------------------------------------------------------- streams */

/* What a stream remembers between events (from st->rpool). */
typedef struct {
    int started;          /* the role chunk went out */
    int finished;         /* a finish_reason went out */
    int calls;            /* tool calls sent: the next call's index */
} gem_stream_t;

/* Emits one chunk whose only choice has delta (stolen) and
 * finish_reason (NULL: null). */
static apr_status_t emit_delta(ark_stream_t *st, json_t *delta,
                               const char *finish)
{
    json_t *chunk = ark_stream_chunk_new(st);
    json_t *choice = json_object();

    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "delta", delta);
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(choice, "finish_reason",
                        finish ? json_string(finish) : json_null());
    json_array_append_new(json_object_get(chunk, "choices"), choice);
    return ark_stream_emit_json(st, chunk);
}

/* The chunks for the parts of one event's candidate. */
static apr_status_t emit_parts(ark_stream_t *st, gem_stream_t *gs,
                               const json_t *parts)
{
    const json_t *part;
    size_t i;
    apr_status_t rv;

    json_array_foreach(parts, i, part) {
        const json_t *t = json_object_get(part, "text");
        const json_t *fc = json_object_get(part, "functionCall");
        json_t *delta = NULL;

        if (json_is_string(t) && !part_is_thought(part)) {
            if (json_string_length(t)) {
                delta = json_pack("{s:O}", "content", t);
            }
        }
        else if (json_is_object(fc)) {
            json_t *call = tool_call_make(fc, tool_call_id(st->id, gs->calls,
                                                           st->pool));
            json_t *entry;

            if (!call) {
                return APR_EINVAL;
            }
            /* the whole call in one chunk, "index" first as OpenAI has it */
            entry = json_pack("{s:i}", "index", gs->calls++);
            json_object_update(entry, call);
            json_decref(call);
            delta = json_pack("{s:[o]}", "tool_calls", entry);
        }
        if (delta && (rv = emit_delta(st, delta, NULL)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* True if root is an error object, or a list holding one (Google's
 * shape for errors after an HTTP 200). */
static int is_error_event(const json_t *root)
{
    if (json_is_array(root)) {
        root = json_array_get(root, 0);
    }
    return json_is_object(root) && json_object_get(root, "error") != NULL;
}

static apr_status_t gemini_stream_event(ark_stream_t *st,
                                        const ark_sse_event_t *ev)
{
    json_t *root = json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL, NULL);
    const json_t *cands, *cand, *parts, *feedback, *reason;
    gem_stream_t *gs = st->state;
    const char *finish = NULL;
    apr_status_t rv = APR_EINVAL;

    if (is_error_event(root)) {
        rv = APR_EGENERAL;       /* the upstream failed mid-stream */
        goto done;
    }
    cands = json_object_get(root, "candidates");
    feedback = json_object_get(root, "promptFeedback");
    cand = json_array_get(cands, 0);
    parts = json_object_get(json_object_get(cand, "content"), "parts");
    if (!json_is_object(root) || (cands && !json_is_array(cands))
        || (cand && !json_is_object(cand))
        || (parts && !json_is_array(parts))
        || (!cands && !json_is_object(feedback)
            && !json_is_object(json_object_get(root, "usageMetadata")))) {
        goto done;
    }
    usage_from_gemini(&st->usage, json_object_get(root, "usageMetadata"));
    if (!gs) {
        gs = st->state = apr_pcalloc(st->rpool, sizeof(*gs));
    }
    if (!gs->started) {
        gs->started = 1;
        rv = emit_delta(st, json_pack("{s:s,s:s}", "role", "assistant",
                                      "content", ""), NULL);
        if (rv != APR_SUCCESS) {
            goto done;
        }
    }
    if ((rv = emit_parts(st, gs, parts)) != APR_SUCCESS) {
        goto done;
    }
    reason = json_object_get(cand, "finishReason");
    if (json_is_string(reason)) {
        finish = finish_reason(json_string_value(reason), gs->calls > 0);
    }
    else if (!cand && json_is_string(json_object_get(feedback,
                                                     "blockReason"))) {
        finish = "content_filter";
    }
    if (finish && !gs->finished) {
        gs->finished = 1;
        rv = emit_delta(st, json_object(), finish);
    }

done:
    json_decref(root);
    return rv;
}

static apr_status_t gemini_stream_end(ark_stream_t *st)
{
    const gem_stream_t *gs = st->state;

    if (st->done || !gs || !gs->finished) {
        return APR_SUCCESS;      /* cut short: st->done stays 0 */
    }
    return ark_stream_finish(st);
}

/* ----------------------------------------------------------- errors */

/* The delay of a google.rpc.RetryInfo detail ("27s", "1.5s"), or 0. */
static apr_interval_time_t retry_delay(const json_t *details)
{
    const json_t *d;
    size_t i;

    json_array_foreach(details, i, d) {
        const json_t *delay = json_object_get(d, "retryDelay");
        const char *s;
        apr_int64_t sec = 0, frac = 0, scale = 1;

        if (!json_is_string(delay)) {
            continue;
        }
        for (s = json_string_value(delay); apr_isdigit(*s); s++) {
            if (sec <= GEMINI_RETRY_MAX) {
                sec = sec * 10 + (*s - '0');
            }
        }
        if (*s == '.') {
            for (s++; apr_isdigit(*s); s++) {
                if (scale < APR_USEC_PER_SEC) {
                    frac = frac * 10 + (*s - '0');
                    scale *= 10;
                }
            }
        }
        if (*s != 's' || s[1]) {
            continue;
        }
        if (sec >= GEMINI_RETRY_MAX) {
            return apr_time_from_sec(GEMINI_RETRY_MAX);
        }
        return apr_time_from_sec(sec) + frac * (APR_USEC_PER_SEC / scale);
    }
    return 0;
}

/* True if a google.rpc.ErrorInfo detail blames the API key
 * (API_KEY_INVALID, also API_KEY_EXPIRED and friends). */
static int key_refused(const json_t *details)
{
    const json_t *d;
    size_t i;

    json_array_foreach(details, i, d) {
        const json_t *reason = json_object_get(d, "reason");

        if (json_is_string(reason)
            && !strncmp(json_string_value(reason), "API_KEY_", 8)) {
            return 1;
        }
    }
    return 0;
}

static void gemini_map_error(ark_err_t *err, const ark_provider_t *prov,
                             int status, const char *body, apr_size_t len,
                             apr_pool_t *p)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const json_t *e, *details, *gstatus;
    const char *gs;

    e = json_object_get(json_is_array(root) ? json_array_get(root, 0)
                                            : root, "error");
    details = json_object_get(e, "details");
    gstatus = json_object_get(e, "status");
    gs = json_is_string(gstatus) ? json_string_value(gstatus) : "";

    if (key_refused(details)) {
        /* Google answers a bad key with 400 INVALID_ARGUMENT: it is the
         * gateway's credentials that failed, not the client's request */
        ark_provider_map_status(err, 401, NULL, p);
    }
    else if (!strcmp(gs, "FAILED_PRECONDITION")) {
        /* region or billing of the gateway's account */
        ark_err_set(err, 502, "upstream_error", NULL,
                    "The upstream provider refused to serve the gateway's "
                    "account.");
    }
    else if (status == 504 || !strcmp(gs, "DEADLINE_EXCEEDED")) {
        ark_provider_map_status(err, 408, NULL, p);
    }
    else {
        ark_provider_map_status(err, status,
                                ark_provider_error_message(body, len,
                                                           prov->secret, p),
                                p);
    }
    if (err->status == 429) {
        err->retry_after = retry_delay(details);
    }
    json_decref(root);
}

const ark_provider_type_t ark_provider_gemini = {
    "gemini",
    ARK_EP_CHAT,
    gemini_check_option,
    gemini_build_request,
    gemini_parse_response,
    gemini_stream_event,
    gemini_stream_end,
    gemini_map_error,
};
