/* Helpers shared by the cmocka unit tests (see ark_testutil.h).
 *
 * Built once into a convenience library that every unit test program
 * links; nothing here is part of the module.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "ark_testutil.h"

/* ------------------------------------------------------------ running */

static apr_pool_t *root_pool;

int ark_test_pool_setup(void **state)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, root_pool) != APR_SUCCESS) {
        return -1;
    }
    *state = p;
    return 0;
}

int ark_test_pool_teardown(void **state)
{
    apr_pool_destroy(*state);
    return 0;
}

apr_pool_t *ark_test_root_pool(void)
{
    return root_pool;
}

int ark_test_run_group(const char *name, const struct CMUnitTest *tests,
                       size_t count)
{
    int rc;

    if (apr_initialize() != APR_SUCCESS) {
        return 1;
    }
    if (apr_pool_create(&root_pool, NULL) != APR_SUCCESS) {
        apr_terminate();
        return 1;
    }
    rc = _cmocka_run_group_tests(name, tests, count, NULL, NULL);
    apr_pool_destroy(root_pool);
    root_pool = NULL;
    apr_terminate();
    return rc;
}

/* ----------------------------------------------------- files and JSON */

char *ark_test_file_read(const char *path, apr_size_t *plen, apr_pool_t *p)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n;
    char *buf;

    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p)
        != APR_SUCCESS) {
        return NULL;
    }
    assert_int_equal(apr_file_info_get(&fi, APR_FINFO_SIZE, f), APR_SUCCESS);
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    if (n) {
        assert_int_equal(apr_file_read_full(f, buf, n, &n), APR_SUCCESS);
    }
    apr_file_close(f);
    buf[n] = '\0';
    if (plen) {
        *plen = n;
    }
    return buf;
}

char *ark_test_fixture_read(const char *dir, const char *file,
                            apr_size_t *plen, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, dir, "/", file, NULL);
    char *text = ark_test_file_read(path, plen, p);

    if (!text) {
        fail_msg("missing fixture %s", path);
    }
    return text;
}

json_t *ark_test_json_parse(const char *text, apr_size_t len, size_t flags,
                            const char *what, apr_pool_t *owner)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | flags, &jerr);

    if (!j) {
        /* a whole fixture file would drown the message: its start will do */
        fail_msg("%s is not JSON (line %d: %s): %.*s", what, jerr.line,
                 jerr.text, len > 400 ? 400 : (int)len, text);
    }
    return owner ? ark_json_pool_own(j, owner) : j;
}

json_t *ark_test_fixture_json(const char *dir, const char *file,
                              size_t flags, apr_pool_t *p)
{
    apr_size_t len;
    const char *text = ark_test_fixture_read(dir, file, &len, p);

    return ark_test_json_parse(text, len, flags,
                               apr_pstrcat(p, dir, "/", file, NULL), NULL);
}

const char *ark_test_json_pretty(const json_t *j, apr_pool_t *p)
{
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_ENCODE_ANY);
    const char *out = apr_pstrdup(p, s ? s : "(null)");

    free(s);
    return out;
}

void ark_test_assert_json_equal(const json_t *got, const json_t *want,
                                const char *what, apr_pool_t *p)
{
    if (!json_equal((json_t *)got, (json_t *)want)) {
        fail_msg("%s differs\n--- got:\n%s\n--- want:\n%s", what,
                 ark_test_json_pretty(got, p),
                 ark_test_json_pretty(want, p));
    }
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True if dir/name is a directory, by what apr_dir_read said of it or,
 * when it could not say, by asking again. */
static int is_dir(const char *dir, const apr_finfo_t *fi, apr_pool_t *p)
{
    apr_finfo_t st;

    if (fi->valid & APR_FINFO_TYPE) {
        return fi->filetype == APR_DIR;
    }
    return apr_stat(&st, apr_pstrcat(p, dir, "/", fi->name, NULL),
                    APR_FINFO_TYPE, p) == APR_SUCCESS
           && st.filetype == APR_DIR;
}

apr_array_header_t *ark_test_case_dirs(const char *dir, const char *prefix,
                                       const char *const *exclude,
                                       apr_pool_t *p)
{
    apr_array_header_t *names = apr_array_make(p, 64, sizeof(const char *));
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        fail_msg("cannot open %s", dir);
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d))
           == APR_SUCCESS || rv == APR_INCOMPLETE) {
        int i, skip = 0;

        if (!fi.name || strncmp(fi.name, prefix, strlen(prefix))) {
            continue;
        }
        for (i = 0; exclude && exclude[i]; i++) {
            if (!strncmp(fi.name, exclude[i], strlen(exclude[i]))) {
                skip = 1;
            }
        }
        if (!skip && is_dir(dir, &fi, p)) {
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p, fi.name);
        }
    }
    apr_dir_close(d);
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *),
          cmp_names);
    return names;
}

const char *ark_test_temp_file(const char *content, apr_size_t len,
                               apr_pool_t *p)
{
    const char *dir;
    char *path;
    apr_file_t *f;
    apr_size_t n = len;

    assert_int_equal(apr_temp_dir_get(&dir, p), APR_SUCCESS);
    path = apr_pstrcat(p, dir, "/ark-test-XXXXXX", NULL);
    assert_int_equal(apr_file_mktemp(&f, path,
                                     APR_FOPEN_CREATE | APR_FOPEN_READ
                                     | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                                     | APR_FOPEN_DELONCLOSE, p),
                     APR_SUCCESS);
    if (len) {
        assert_int_equal(apr_file_write_full(f, content, len, &n),
                         APR_SUCCESS);
    }
    assert_int_equal(apr_file_flush(f), APR_SUCCESS);
    return path;
}

/* ---------------------------------------------------------- providers */

ark_provider_t *ark_test_provider_make(const ark_provider_type_t *type,
                                       const char *name,
                                       const char *base_url,
                                       const char *secret, apr_pool_t *p)
{
    ark_provider_t *prov = apr_pcalloc(p, sizeof(*prov));

    prov->name = name;
    prov->type = type;
    prov->base_url = base_url;
    prov->secret_source = secret ? "env:ARK_TEST_API_KEY" : NULL;
    prov->secret = secret;
    return prov;
}

void ark_test_provider_option(ark_provider_t *prov, const char *name,
                              const char *value, apr_pool_t *p)
{
    const char *why;

    if (!prov->type->check_option) {
        fail_msg("type %s takes no options (%s=%s)", prov->type->name, name,
                 value);
    }
    why = prov->type->check_option(name, value, p);
    if (why) {
        fail_msg("option %s=%s refused: %s", name, value, why);
    }
    if (!prov->options) {
        prov->options = apr_table_make(p, 2);
    }
    apr_table_set(prov->options, name, value);
}

void ark_test_provider_options_file(ark_provider_t *prov, const char *path,
                                    apr_pool_t *p)
{
    apr_size_t len;
    const char *text = ark_test_file_read(path, &len, p);
    const char *k;
    json_t *options, *v;

    if (!text) {
        return;
    }
    options = json_object_get(ark_test_json_parse(text, len, 0, path, p),
                              "options");
    json_object_foreach(options, k, v) {
        if (!json_is_string(v)) {
            fail_msg("%s: option %s is not a string", path, k);
        }
        ark_test_provider_option(prov, k, json_string_value(v), p);
    }
}

void ark_test_chat_parse(ark_req_t *req, const char *body, apr_size_t len,
                         apr_pool_t *p)
{
    ark_err_t err;

    if (ark_chat_req_parse(req, body, len, &err, p) != APR_SUCCESS) {
        fail_msg("test request refused: %s", err.message);
    }
}

const char *ark_test_header_at(const ark_upstream_req_t *up, int i)
{
    return APR_ARRAY_IDX(up->headers, i, const char *);
}

void ark_test_parse_ok(const ark_provider_type_t *type, const char *body,
                       apr_size_t len, const char **pout, apr_size_t *plen,
                       ark_usage_t *u, apr_pool_t *p)
{
    *pout = NULL;
    *plen = 0;
    ark_usage_clear(u);
    if (type->parse_response(pout, plen, u, NULL, body, len, p)
        != APR_SUCCESS) {
        fail_msg("refused: %.*s", (int)len, body);
    }
}

/* What no upstream answer can be, whatever the provider type. */
static const char *const not_an_answer[] = {
    "",
    "not json",
    "<html><head><title>502 Bad Gateway</title></head></html>",
    "[]",
    "null",
    "{}",
};

static void parse_refused(const ark_provider_type_t *type, const char *body,
                          int usage_unknown, apr_pool_t *p)
{
    const char *out = NULL;
    apr_size_t out_len = 0;
    ark_usage_t u;

    ark_usage_clear(&u);
    if (type->parse_response(&out, &out_len, &u, NULL, body, strlen(body), p)
        != APR_EINVAL) {
        fail_msg("accepted: %s", body);
    }
    if (usage_unknown) {
        assert_int_equal(u.prompt_tokens, -1);
    }
}

void ark_test_parse_refuses(const ark_provider_type_t *type,
                            const char *const *bodies, apr_size_t n,
                            int usage_unknown, apr_pool_t *p)
{
    apr_size_t i;

    for (i = 0; i < sizeof(not_an_answer) / sizeof(not_an_answer[0]); i++) {
        parse_refused(type, not_an_answer[i], usage_unknown, p);
    }
    for (i = 0; i < n; i++) {
        parse_refused(type, bodies[i], usage_unknown, p);
    }
}

void ark_test_map_errors(const ark_provider_t *prov,
                         const ark_test_map_case_t *cases, apr_size_t n,
                         const char *leak, apr_pool_t *p)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        const ark_test_map_case_t *mc = &cases[i];
        ark_err_t err;
        const char *json;

        memset(&err, 0x5a, sizeof(err));
        prov->type->map_error(&err, prov, mc->upstream, mc->body,
                              mc->body ? strlen(mc->body) : 0, p);
        if (err.status != mc->status || strcmp(err.code, mc->code)
            || strcmp(err.message, mc->message)) {
            fail_msg("case %u (HTTP %d): %d %s '%s'", (unsigned)i,
                     mc->upstream, err.status, err.code, err.message);
        }
        assert_string_equal(err.type, mc->type);
        assert_null(err.param);
        assert_int_equal(err.retry_after, mc->retry_after);
        /* the secret never reaches the client's body */
        json = ark_err_json(&err, p);
        if (prov->secret) {
            assert_null(strstr(json, prov->secret));
        }
        assert_null(strstr(json, leak));
    }
}

/* ------------------------------------------------------------ streams */

void ark_test_client_init(ark_test_client_t *c, ark_test_frame_t frame,
                          apr_pool_t *p)
{
    memset(c, 0, sizeof(*c));
    c->pool = p;
    c->frame = frame;
    c->out = apr_array_make(p, 8, sizeof(const char *));
    c->all = "";
    if (frame == ARK_TEST_FRAME_EVENT) {
        c->events = json_array();
    }
}

/* Checks that copy (len bytes) is exactly one "event: NAME\ndata: JSON\n\n"
 * frame whose data "type" is NAME, and records it in c->events. */
static void record_event_frame(ark_test_client_t *c, const char *copy,
                               apr_size_t len)
{
    const char *nl, *data;
    char *name;
    json_t *obj;

    if (strncmp(copy, "event: ", 7) || len < 4
        || strcmp(copy + len - 2, "\n\n")) {
        fail_msg("not one SSE frame: '%s'", copy);
    }
    nl = strchr(copy + 7, '\n');
    assert_non_null(nl);
    name = apr_pstrmemdup(c->pool, copy + 7, nl - (copy + 7));
    if (strncmp(nl + 1, "data: ", 6)) {
        fail_msg("no data line: '%s'", copy);
    }
    data = nl + 7;
    /* a single data line: the JSON is compact, no raw newline inside */
    assert_ptr_equal(strchr(data, '\n'), copy + len - 2);
    obj = ark_test_json_parse(data, (apr_size_t)((copy + len - 2) - data),
                              JSON_ALLOW_NUL, "event data", NULL);
    assert_true(json_is_object(obj));
    assert_string_equal(json_string_value(json_object_get(obj, "type")),
                        name);
    json_array_append_new(c->events, json_pack("{s:s,s:o}", "event", name,
                                               "data", obj));
}

apr_status_t ark_test_client_emit(void *ctx, const char *buf, apr_size_t len)
{
    ark_test_client_t *c = ctx;
    const char *copy;

    c->calls++;
    if (c->fail_with) {
        return c->fail_with;
    }
    copy = apr_pstrmemdup(c->pool, buf, len);
    /* one complete event per call: the buffer length is exact */
    assert_int_equal(strlen(copy), len);
    if (c->frame == ARK_TEST_FRAME_DATA) {
        assert_true(len > 8 && !strncmp(copy, "data: ", 6)
                    && !strcmp(copy + len - 2, "\n\n"));
    }
    else if (c->frame == ARK_TEST_FRAME_EVENT) {
        record_event_frame(c, copy, len);
    }
    APR_ARRAY_PUSH(c->out, const char *) = copy;
    c->all = apr_pstrcat(c->pool, c->all, copy, NULL);
    return APR_SUCCESS;
}

void ark_test_stream_init(ark_stream_t *st, ark_test_client_t *c,
                          const ark_test_stream_conf_t *conf,
                          int wants_usage, apr_pool_t *p)
{
    ark_test_client_init(c, conf->frame, p);
    c->type = conf->type;
    memset(st, 0, sizeof(*st));
    st->upstream_model = conf->model;
    st->id = conf->id;
    st->created = conf->created;
    st->client_wants_usage = wants_usage;
    ark_usage_clear(&st->usage);
    st->emit = ark_test_client_emit;
    st->emit_ctx = c;
    apr_pool_create(&st->rpool, p);
    apr_pool_create(&st->pool, st->rpool);
}

apr_status_t ark_test_stream_event(void *ctx, const ark_sse_event_t *ev)
{
    ark_stream_t *st = ctx;
    const ark_test_client_t *c = st->emit_ctx;
    apr_status_t rv = c->type->stream_event(st, ev);

    apr_pool_clear(st->pool);
    return rv;
}

apr_status_t ark_test_stream_data(ark_stream_t *st, const char *data)
{
    ark_sse_event_t ev;

    ev.event = "";
    ev.wire = NULL;
    ev.data = data;
    ev.data_len = strlen(data);
    return ark_test_stream_event(st, &ev);
}

void ark_test_stream_refuses(const ark_test_stream_conf_t *conf,
                             const char *const *events, apr_size_t n,
                             apr_pool_t *p)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        ark_stream_t st;
        ark_test_client_t c;

        ark_test_stream_init(&st, &c, conf, 1, p);
        if (ark_test_stream_data(&st, events[i]) != APR_EINVAL) {
            fail_msg("accepted: '%s'", events[i]);
        }
        assert_int_equal(c.out->nelts, 0);
        assert_int_equal(st.events, 0);
        assert_int_equal(st.done, 0);
    }
}

/* The size of the next piece at offset at of len bytes. */
static apr_size_t next_piece(const ark_test_split_t *split, apr_size_t at,
                             apr_size_t len)
{
    apr_size_t n = len - at;

    switch (split->mode) {
    case ARK_TEST_SPLIT_BYTES:
        n = 1;
        break;
    case ARK_TEST_SPLIT_STEP:
        n = split->size;
        break;
    case ARK_TEST_SPLIT_RANDOM:
        n = 1 + ark_test_rand(split->seed) % split->size;
        break;
    default:
        break;
    }
    return n < len - at ? n : len - at;
}

apr_status_t ark_test_sse_feed(ark_sse_parser_t *sp, const char *s,
                               apr_size_t len, const ark_test_split_t *split,
                               ark_sse_cb *cb, void *ctx)
{
    apr_size_t at = 0;
    apr_status_t rv;
    int i;

    if (split->mode == ARK_TEST_SPLIT_CUTS) {
        for (i = 0; i <= split->n_cuts; i++) {
            apr_size_t end = i < split->n_cuts ? split->cuts[i] : len;

            rv = ark_sse_feed(sp, s + at, end - at, cb, ctx);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            at = end;
        }
        return APR_SUCCESS;
    }
    while (at < len) {
        apr_size_t n = next_piece(split, at, len);

        rv = ark_sse_feed(sp, s + at, n, cb, ctx);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        at += n;
    }
    return APR_SUCCESS;
}

apr_uint32_t ark_test_rand(apr_uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}
