/* The JSON access log line. See ark_accesslog.h. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>
#include <jansson.h>

#include "ark_accesslog.h"

void ark_access_init(ark_access_t *a, apr_time_t start)
{
    memset(a, 0, sizeof(*a));
    a->time = start;
    a->upstream_new_conns = -1;
    a->ttfb = -1;
    a->cache_similarity = -1.0;
    a->spend_nano = -1;
    ark_usage_clear(&a->usage);
}

/* A string field. A value that is not UTF-8 (httpd decodes "%FF" in a
 * URI to a raw byte) cannot be a JSON string as it is: it is logged with
 * its non-ASCII bytes replaced by '?' rather than the field vanishing. */
static void set_str(json_t *o, const char *k, const char *v, apr_pool_t *p)
{
    json_t *j;

    if (!v) {
        json_object_set_new(o, k, json_null());
        return;
    }
    j = json_string(v);
    if (!j) {
        char *copy = apr_pstrdup(p, v), *c;

        for (c = copy; *c; c++) {
            if ((unsigned char)*c >= 0x80) {
                *c = '?';
            }
        }
        j = json_string(copy);
    }
    json_object_set_new(o, k, j);
}

static void set_count(json_t *o, const char *k, long v)
{
    json_object_set_new(o, k, v >= 0 ? json_integer(v) : json_null());
}

static void set_ms(json_t *o, const char *k, apr_interval_time_t t)
{
    json_object_set_new(o, k, t >= 0 ? json_real((double)t / 1000.0)
                                     : json_null());
}

const char *ark_access_line(const ark_access_t *a, apr_size_t *plen,
                            apr_pool_t *p)
{
    apr_time_exp_t tm;
    char ts[40];
    json_t *o = json_object();
    const char *line;
    apr_size_t len = 0;

    apr_time_exp_gmt(&tm, a->time);
    apr_snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, tm.tm_usec / 1000);
    set_str(o, "time", ts, p);
    set_str(o, "method", a->method, p);
    set_str(o, "path", a->path, p);
    set_str(o, "key", a->key_name, p);
    set_str(o, "tenant", a->tenant, p);
    set_str(o, "model", a->model, p);
    set_str(o, "provider", a->provider, p);
    set_str(o, "upstream_model", a->upstream_model, p);
    set_str(o, "channel", a->channel, p);
    json_object_set_new(o, "attempts", json_integer(a->attempts));
    json_object_set_new(o, "status", json_integer(a->status));
    json_object_set_new(o, "stream", json_boolean(a->stream));
    set_str(o, "error", a->error_code, p);
    set_str(o, "upstream_fail", a->upstream_fail, p);
    json_object_set_new(o, "upstream_status",
                        a->upstream_status ? json_integer(a->upstream_status)
                                           : json_null());
    json_object_set_new(o, "upstream_conn_reused",
                        a->upstream_new_conns < 0
                            ? json_null()
                            : json_boolean(a->upstream_new_conns == 0));
    set_ms(o, "ttfb_ms", a->ttfb);
    set_ms(o, "latency_ms", a->latency);
    set_count(o, "prompt_tokens", a->usage.prompt_tokens);
    set_count(o, "completion_tokens", a->usage.completion_tokens);
    set_count(o, "total_tokens", a->usage.total_tokens);
    if (a->spend_nano >= 0) {
        json_object_set_new(o, "spend_nano", json_integer(a->spend_nano));
    }
    if (a->request_body) {
        set_str(o, "request_body", a->request_body, p);
    }
    if (a->response_body) {
        set_str(o, "response_body", a->response_body, p);
    }
    if (a->bodies_truncated) {
        json_object_set_new(o, "bodies_truncated", json_true());
    }
    if (a->cache) {
        set_str(o, "cache", a->cache, p);
        if (a->cache_similarity >= 0) {
            json_object_set_new(o, "cache_similarity",
                                json_real(a->cache_similarity));
        }
    }
    if (a->client_aborted) {
        json_object_set_new(o, "client_aborted", json_true());
    }
    if (a->trace_id) {
        set_str(o, "trace_id", a->trace_id, p);
    }
    {
        /* 10 significant digits: milliseconds print as 0.706, not as
         * 0.70599999999999996 */
        char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));

        line = text ? apr_pstrdup(p, text) : NULL;
        len = text ? strlen(text) : 0;
        free(text);
    }
    json_decref(o);
    if (!line) {
        line = "{\"error\":\"log line encoding failed\"}";
        len = strlen(line);
    }
    line = apr_pstrcat(p, line, "\n", NULL);
    if (plen) {
        *plen = len + 1;
    }
    return line;
}
