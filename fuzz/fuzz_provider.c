/* Providers, requests and frame checks for the translator harnesses
 * (see fuzz_provider.h). */
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>
#include <jansson.h>

#include "fuzz_common.h"
#include "fuzz_provider.h"

static apr_pool_t *keep;
static ark_provider_t providers[FUZZ_NPROVIDERS];
static ark_req_t chat_req[2], embed_req;

static const char chat_body[] =
    "{\"model\":\"gpt-4o\",\"messages\":["
    "{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"Hello!\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":"
    "{\"type\":\"string\"}}}}}],"
    "\"stream\":%s}";

static const char embed_body[] =
    "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\"]}";

static void provider_init(ark_provider_t *prov,
                          const ark_provider_type_t *type, const char *url,
                          const char *const *options)
{
    int i;

    memset(prov, 0, sizeof(*prov));
    prov->name = type->name;
    prov->type = type;
    prov->base_url = url;
    prov->secret_source = "env:FUZZ_API_KEY";
    prov->secret = FUZZ_SECRET;
    prov->defined_at = "fuzz:1";
    if (!options) {
        return;
    }
    prov->options = apr_table_make(keep, 2);
    for (i = 0; options[i]; i += 2) {
        /* as the configuration does: only options the type accepts */
        FUZZ_CHECK(type->check_option(options[i], options[i + 1], keep)
                   == NULL);
        apr_table_set(prov->options, options[i], options[i + 1]);
    }
}

static void setup(void)
{
    static const char *const azure_opts[] = {
        "api-version", "2025-01-01-preview", NULL
    };
    static const char *const anthropic_opts[] = {
        "anthropic-version", "2023-06-01", "max-tokens", "1000", NULL
    };
    static const char *const gemini_opts[] = {"max-tokens", "2048", NULL};
    ark_err_t err;
    int i;

    if (keep) {
        return;
    }
    if (apr_pool_create(&keep, fuzz_apr_init()) != APR_SUCCESS) {
        fuzz_fail(__FILE__, __LINE__, "apr_pool_create");
    }
    provider_init(&providers[0], &ark_provider_openai,
                  "https://api.openai.com/v1", NULL);
    provider_init(&providers[1], &ark_provider_openai,
                  "http://127.0.0.1:8000/v1", NULL);
    provider_init(&providers[2], &ark_provider_azure,
                  "https://res.openai.azure.com", NULL);
    provider_init(&providers[3], &ark_provider_azure,
                  "https://res.openai.azure.com", azure_opts);
    provider_init(&providers[4], &ark_provider_anthropic,
                  "https://api.anthropic.com/v1", NULL);
    provider_init(&providers[5], &ark_provider_anthropic,
                  "https://api.anthropic.com/v1", anthropic_opts);
    provider_init(&providers[6], &ark_provider_gemini,
                  "https://generativelanguage.googleapis.com/v1beta", NULL);
    provider_init(&providers[7], &ark_provider_gemini,
                  "https://generativelanguage.googleapis.com/v1beta",
                  gemini_opts);
    for (i = 0; i < 2; i++) {
        const char *body = apr_psprintf(
            keep, chat_body,
            i ? "true,\"stream_options\":{\"include_usage\":true}"
              : "false");

        FUZZ_CHECK(ark_chat_req_parse(&chat_req[i], body, strlen(body),
                                      &err, keep) == APR_SUCCESS);
    }
    FUZZ_CHECK(ark_embed_req_parse(&embed_req, embed_body,
                                   strlen(embed_body), &err, keep)
               == APR_SUCCESS);
}

const ark_provider_t *fuzz_provider(int i)
{
    setup();
    return &providers[i];
}

const ark_req_t *fuzz_chat_req(int stream)
{
    setup();
    return &chat_req[stream ? 1 : 0];
}

const ark_req_t *fuzz_embed_req(void)
{
    setup();
    return &embed_req;
}

void fuzz_check_upstream(const ark_upstream_req_t *up,
                         const ark_provider_t *prov)
{
    json_t *body;
    int i;

    FUZZ_CHECK(up->url != NULL);
    FUZZ_CHECK(!strncmp(up->url, prov->base_url, strlen(prov->base_url)));
    FUZZ_CHECK(up->headers != NULL);
    for (i = 0; i < up->headers->nelts; i++) {
        const char *h = APR_ARRAY_IDX(up->headers, i, const char *);

        /* a header line split by a client-chosen CR or LF would let a
         * client add headers of its own to the upstream request */
        FUZZ_CHECK(h && !strpbrk(h, "\r\n"));
    }
    FUZZ_CHECK(up->body != NULL);
    body = json_loadb(up->body, up->body_len,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(json_is_object(body));
    json_decref(body);
}

void fuzz_check_err(const ark_err_t *err, int no_secret, apr_pool_t *p)
{
    const char *json;
    json_t *doc;

    FUZZ_CHECK(err->status >= 400 && err->status <= 599);
    FUZZ_CHECK(err->type != NULL && err->message != NULL);
    json = ark_err_json(err, p);
    FUZZ_CHECK(json != NULL);
    FUZZ_CHECK(!no_secret || strstr(json, FUZZ_SECRET) == NULL);
    doc = json_loads(json, JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(json_is_object(doc));
    json_decref(doc);
}

int fuzz_check_openai_frame(const char *buf, apr_size_t len)
{
    json_t *chunk;

    FUZZ_CHECK(len > 8 && !strncmp(buf, "data: ", 6));
    FUZZ_CHECK(buf[len - 2] == '\n' && buf[len - 1] == '\n');
    FUZZ_CHECK(memchr(buf, '\0', len) == NULL);
    if (len == 14 && !memcmp(buf, "data: [DONE]\n\n", 14)) {
        return 1;
    }
    /* one data line: the payload holds no raw line break */
    FUZZ_CHECK(memchr(buf, '\n', len - 2) == NULL);
    FUZZ_CHECK(memchr(buf, '\r', len) == NULL);
    chunk = json_loadb(buf + 6, len - 8, JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(json_is_object(chunk));
    json_decref(chunk);
    return 0;
}

void fuzz_check_anthropic_frame(const char *buf, apr_size_t len)
{
    const char *nl, *data;
    json_t *obj;
    const char *type;

    FUZZ_CHECK(len > 7 && !strncmp(buf, "event: ", 7));
    FUZZ_CHECK(buf[len - 2] == '\n' && buf[len - 1] == '\n');
    FUZZ_CHECK(memchr(buf, '\0', len) == NULL);
    nl = memchr(buf + 7, '\n', len - 7);
    FUZZ_CHECK(nl != NULL && (apr_size_t)(nl - buf) + 7 < len);
    FUZZ_CHECK(!strncmp(nl + 1, "data: ", 6));
    data = nl + 7;
    FUZZ_CHECK(memchr(data, '\n', (apr_size_t)(buf + len - 2 - data))
               == NULL);
    obj = json_loadb(data, (apr_size_t)(buf + len - 2 - data),
                     JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(json_is_object(obj));
    type = json_string_value(json_object_get(obj, "type"));
    FUZZ_CHECK(type != NULL && strlen(type) == (apr_size_t)(nl - buf - 7)
               && !memcmp(type, buf + 7, strlen(type)));
    json_decref(obj);
}
