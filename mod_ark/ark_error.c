/* Errors as clients see them: building the OpenAI error object.
 * See ark_error.h. Pure C (APR + jansson), unit-tested directly. */
#include <stdarg.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "ark_error.h"

void ark_err_set(ark_err_t *e, int status, const char *code,
                 const char *param, const char *message)
{
    e->status = status;
    e->type = ark_err_type_for(status);
    e->code = code;
    e->param = param;
    e->message = message;
    e->retry_after = 0;
}

void ark_err_setf(ark_err_t *e, apr_pool_t *p, int status, const char *code,
                  const char *param, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ark_err_set(e, status, code, param, apr_pvsprintf(p, fmt, ap));
    va_end(ap);
}

const char *ark_err_type_for(int status)
{
    switch (status) {
    case 400: case 404: case 405: case 413: case 415: case 422:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    case 502:
        return "upstream_error";
    case 503:
        return "service_unavailable_error";
    case 504:
        return "timeout_error";
    default:
        return "server_error";
    }
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

const char *ark_err_json(const ark_err_t *e, apr_pool_t *p)
{
    static const char fallback[] =
        "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\","
        "\"param\":null,\"code\":null}}";
    json_t *inner, *root;
    char *text;
    const char *out;

    inner = json_pack("{s:o,s:s,s:o,s:o}",
                      "message", str_or_null(e->message ? e->message : ""),
                      "type", e->type ? e->type : ark_err_type_for(e->status),
                      "param", str_or_null(e->param),
                      "code", str_or_null(e->code));
    if (!inner) {
        return fallback;
    }
    root = json_pack("{s:o}", "error", inner);
    if (!root) {
        return fallback;
    }
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text) {
        return fallback;
    }
    out = apr_pstrdup(p, text);
    free(text);
    return out;
}

const char *ark_err_quote(const char *s, apr_size_t max, apr_pool_t *p)
{
    apr_size_t len;
    json_t *check;
    char *out, *c;

    if (!s) {
        return "";
    }
    len = strlen(s);
    if (len <= max) {
        out = apr_pstrmemdup(p, s, len);
    }
    else {
        len = max;
        /* step back over UTF-8 continuation bytes: never split a rune */
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) {
            len--;
        }
        out = apr_pstrcat(p, apr_pstrmemdup(p, s, len), "...", NULL);
    }
    /* A client string need not be UTF-8 (a decoded URI may hold any
     * byte) but a JSON string must be: replace the non-ASCII bytes of
     * such a string, or ark_err_json would lose the whole message. */
    check = json_string(out);
    if (!check) {
        for (c = out; *c; c++) {
            if ((unsigned char)*c >= 0x80) {
                *c = '?';
            }
        }
    }
    json_decref(check);
    return out;
}
