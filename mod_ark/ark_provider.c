/* Providers: the type table, secret loading and upstream error helpers
 * shared by every provider type. See ark_provider.h. */
#include <stdlib.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <jansson.h>

#include "ark_provider.h"

/* Every provider type, one row each. */
static const ark_provider_type_t *const provider_types[] = {
    &ark_provider_openai,
    NULL
};

/* A secret file larger than this is certainly not an API key. */
#define ARK_SECRET_FILE_MAX 8192

const ark_provider_type_t *ark_provider_type_find(const char *name)
{
    int i;

    for (i = 0; provider_types[i]; i++) {
        if (!strcmp(provider_types[i]->name, name)) {
            return provider_types[i];
        }
    }
    return NULL;
}

const char *ark_provider_type_names(apr_pool_t *p)
{
    const char *s = "";
    int i;

    for (i = 0; provider_types[i]; i++) {
        s = apr_pstrcat(p, s, i ? ", " : "", provider_types[i]->name, NULL);
    }
    return s;
}

static const char *trim_secret(char *s, apr_size_t len)
{
    /* the first line, without surrounding white space */
    char *end;

    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    end = memchr(s, '\n', len);
    if (end) {
        len = (apr_size_t)(end - s);
    }
    while (len > 0 && (s[len - 1] == '\r' || s[len - 1] == ' '
                       || s[len - 1] == '\t')) {
        len--;
    }
    s[len] = '\0';
    return s;
}

apr_status_t ark_provider_load_secret(ark_provider_t *prov,
                                      const char **perr, apr_pool_t *p)
{
    const char *src = prov->secret_source;
    const char *value;

    *perr = NULL;
    if (!src) {
        prov->secret = NULL;
        return APR_SUCCESS;
    }
    if (!strncmp(src, "env:", 4)) {
        const char *env = getenv(src + 4);

        if (!env || !*env) {
            *perr = apr_psprintf(p, "environment variable %s is not set "
                                 "or empty", src + 4);
            return APR_ENOENT;
        }
        value = trim_secret(apr_pstrdup(p, env), strlen(env));
    }
    else if (!strncmp(src, "file:", 5)) {
        apr_file_t *f;
        apr_finfo_t fi;
        apr_size_t n;
        char *buf;
        apr_status_t rv;

        rv = apr_file_open(&f, src + 5, APR_FOPEN_READ, 0, p);
        if (rv != APR_SUCCESS) {
            char msg[120];

            *perr = apr_psprintf(p, "cannot open secret file %s: %s",
                                 src + 5, apr_strerror(rv, msg, sizeof(msg)));
            return rv;
        }
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
        if (rv == APR_SUCCESS && fi.size > ARK_SECRET_FILE_MAX) {
            apr_file_close(f);
            *perr = apr_psprintf(p, "secret file %s is larger than %d "
                                 "bytes", src + 5, ARK_SECRET_FILE_MAX);
            return APR_EINVAL;
        }
        buf = apr_palloc(p, ARK_SECRET_FILE_MAX + 1);
        n = ARK_SECRET_FILE_MAX;
        rv = apr_file_read_full(f, buf, n, &n);
        apr_file_close(f);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv)) {
            *perr = apr_psprintf(p, "cannot read secret file %s", src + 5);
            return rv;
        }
        value = trim_secret(buf, n);
    }
    else {
        *perr = "secret source must be env:NAME or file:/path";
        return APR_EINVAL;
    }
    if (!*value) {
        *perr = apr_psprintf(p, "secret from %s is empty", src);
        return APR_EINVAL;
    }
    prov->secret = value;
    return APR_SUCCESS;
}

/* True if text contains any 8-byte window of secret. */
static int leaks_secret(const char *text, const char *secret)
{
    apr_size_t slen, i;

    if (!secret) {
        return 0;
    }
    slen = strlen(secret);
    if (slen < 8) {
        return strstr(text, secret) != NULL;
    }
    for (i = 0; i + 8 <= slen; i++) {
        char window[9];

        memcpy(window, secret + i, 8);
        window[8] = '\0';
        if (strstr(text, window)) {
            return 1;
        }
    }
    return 0;
}

const char *ark_provider_error_message(const char *body, apr_size_t len,
                                       const char *secret, apr_pool_t *p)
{
    json_t *root, *msg;
    const char *out = NULL;

    if (!body || !len) {
        return NULL;
    }
    root = json_loadb(body, len, 0, NULL);
    if (!root) {
        return NULL;
    }
    msg = json_object_get(json_object_get(root, "error"), "message");
    if (json_is_string(msg) && json_string_length(msg) > 0
        && !leaks_secret(json_string_value(msg), secret)) {
        out = ark_err_quote(json_string_value(msg), 512, p);
    }
    json_decref(root);
    return out;
}
