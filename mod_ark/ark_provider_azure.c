/* Provider type "azure": Azure OpenAI Service.
 *
 * Same bodies and answers as OpenAI (see ark_provider_openai.c); what
 * differs is the address and the credentials:
 *   URL     <base>/openai/deployments/<deployment>/chat/completions
 *           ?api-version=<api-version>   (or /embeddings)
 *   auth    "api-key: <secret>"
 * The deployment is the channel's upstream model name (ArkModel), the
 * base URL the resource endpoint (https://NAME.openai.azure.com) and the
 * API version an ArkProvider option, e.g.
 *   ArkProvider az azure https://acme.openai.azure.com key=env:AZ_KEY \
 *               api-version=2024-10-21
 * Answers may carry content filter results, which are relayed; streams
 * may start with a chunk without choices (prompt filter results), which
 * is dropped.
 */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "ark_provider.h"

#define AZURE_DEFAULT_API_VERSION "2024-10-21"

static const char *azure_check_option(const char *name, const char *value,
                                      apr_pool_t *p)
{
    const char *c;

    if (strcmp(name, "api-version")) {
        return apr_psprintf(p, "unknown option '%s' for type azure "
                            "(expected api-version=)", name);
    }
    /* 2024-10-21 or 2025-01-01-preview */
    if (strlen(value) < 10 || !apr_isdigit(value[0])) {
        return apr_psprintf(p, "api-version='%s' is not an Azure OpenAI "
                            "API version such as 2024-10-21", value);
    }
    for (c = value; *c; c++) {
        if (!apr_isalnum(*c) && *c != '-') {
            return apr_psprintf(p, "api-version='%s' is not an Azure "
                                "OpenAI API version such as 2024-10-21",
                                value);
        }
    }
    return NULL;
}

static apr_status_t azure_build_request(ark_upstream_req_t *out,
                                        const ark_provider_t *prov,
                                        const char *upstream_model,
                                        const ark_req_t *req,
                                        ark_err_t *err, apr_pool_t *p)
{
    const char *version = prov->options
        ? apr_table_get(prov->options, "api-version") : NULL;
    int chat = req->endpoint == ARK_ENDPOINT_CHAT;

    out->body = ark_openai_body(req, upstream_model, &out->body_len, p);
    if (!out->body) {
        ark_err_set(err, 500, "internal_error", NULL,
                    "The gateway could not encode the upstream request.");
        return APR_ENOMEM;
    }
    out->url = apr_pstrcat(p, prov->base_url, "/openai/deployments/",
                           ark_url_escape_segment(upstream_model, p),
                           chat ? "/chat/completions" : "/embeddings",
                           "?api-version=",
                           version ? version : AZURE_DEFAULT_API_VERSION,
                           NULL);
    out->headers = ark_upstream_headers(chat && req->stream, "api-key", "",
                                        prov->secret, p);
    return APR_SUCCESS;
}

const ark_provider_type_t ark_provider_azure = {
    "azure",
    ARK_EP_CHAT | ARK_EP_EMBEDDINGS,
    azure_check_option,
    azure_build_request,
    ark_openai_parse_response,
    ark_openai_stream_event,
    NULL,
    ark_openai_map_error,
};
