/* Configuration parsing helpers. See ark_config.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "ark_config.h"

/* The longest duration accepted, in milliseconds: 100 days, far above
 * any timeout and far below overflowing apr_interval_time_t. */
#define ARK_MAX_DURATION_MS (100LL * 24 * 3600 * 1000)

apr_status_t ark_parse_duration(apr_interval_time_t *out, const char *s)
{
    char *end;
    apr_int64_t n, unit_ms;

    if (!s || !isdigit((unsigned char)*s)) {
        return APR_EINVAL;
    }
    errno = 0;
    n = apr_strtoi64(s, &end, 10);
    if (errno || n < 0) {
        return APR_EINVAL;
    }
    if (!strcmp(end, "ms")) {
        unit_ms = 1;
    }
    else if (!*end || !strcmp(end, "s")) {
        unit_ms = 1000;
    }
    else if (!strcmp(end, "m")) {
        unit_ms = 60 * 1000;
    }
    else if (!strcmp(end, "h")) {
        unit_ms = 3600 * 1000;
    }
    else {
        return APR_EINVAL;
    }
    /* bound the value in its unit, before multiplying: "9999999999h"
     * would overflow */
    if (n > ARK_MAX_DURATION_MS / unit_ms) {
        return APR_EINVAL;
    }
    *out = apr_time_from_msec(n * unit_ms);
    return APR_SUCCESS;
}

apr_status_t ark_parse_size(apr_off_t *out, const char *s)
{
    char *end;
    apr_int64_t n, mult = 1;

    if (!s || !isdigit((unsigned char)*s)) {
        return APR_EINVAL;
    }
    errno = 0;
    n = apr_strtoi64(s, &end, 10);
    if (errno || n < 0) {
        return APR_EINVAL;
    }
    if (*end) {
        switch (apr_toupper(*end)) {
        case 'K': mult = 1024; break;
        case 'M': mult = 1024 * 1024; break;
        case 'G': mult = 1024 * 1024 * 1024; break;
        default: return APR_EINVAL;
        }
        end++;
        if (*end == 'B' || *end == 'b') {
            end++;
        }
        if (*end) {
            return APR_EINVAL;
        }
    }
    if (n > APR_INT64_MAX / mult) {
        return APR_EINVAL;
    }
    *out = (apr_off_t)(n * mult);
    return APR_SUCCESS;
}

int ark_name_valid(const char *s)
{
    apr_size_t n = 0;

    if (!s || !*s) {
        return 0;
    }
    for (; *s; s++, n++) {
        if (!apr_isalnum(*s) && !strchr("._:/@-", *s)) {
            return 0;
        }
    }
    return n <= 128;
}

static const char *parse_timeout(apr_interval_time_t *out, const char *v,
                                 const char *what, apr_pool_t *p)
{
    if (ark_parse_duration(out, v) != APR_SUCCESS || *out <= 0
        || *out > ARK_MAX_TIMEOUT) {
        return apr_psprintf(p, "ArkProvider: %s='%s' is not a duration "
                            "between 1ms and 1h (e.g. 500ms, 10s, 5m)",
                            what, v);
    }
    return NULL;
}

const char *ark_provider_parse(ark_provider_t **pprov, int argc,
                               char *const argv[], apr_pool_t *p)
{
    ark_provider_t *prov;
    const char *url, *host, *err;
    apr_size_t ulen;
    int i;

    if (argc < 3) {
        return "ArkProvider takes <name> <type> <base-url> "
               "[key=env:VAR|key=file:/path] [connect-timeout=DUR] "
               "[timeout=DUR]";
    }
    prov = apr_pcalloc(p, sizeof(*prov));
    if (!ark_name_valid(argv[0])) {
        return apr_psprintf(p, "ArkProvider: invalid name '%s' (1-128 "
                            "characters of A-Z a-z 0-9 . _ : / @ -)",
                            argv[0]);
    }
    prov->name = argv[0];
    prov->type = ark_provider_type_find(argv[1]);
    if (!prov->type) {
        return apr_psprintf(p, "ArkProvider %s: unknown type '%s' "
                            "(supported: %s)", argv[0], argv[1],
                            ark_provider_type_names(p));
    }
    url = argv[2];
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        return apr_psprintf(p, "ArkProvider %s: base URL '%s' must start "
                            "with http:// or https://", argv[0], url);
    }
    host = url + (strncmp(url, "https://", 8) ? 7 : 8);
    if (!*host || *host == '/') {
        return apr_psprintf(p, "ArkProvider %s: base URL '%s' has no host "
                            "name", argv[0], url);
    }
    if (strchr(url, '?') || strchr(url, '#') || strchr(url, ' ')) {
        return apr_psprintf(p, "ArkProvider %s: base URL must not contain "
                            "a query, fragment or space", argv[0]);
    }
    ulen = strlen(url);
    while (ulen > 0 && url[ulen - 1] == '/') {
        ulen--;
    }
    prov->base_url = apr_pstrmemdup(p, url, ulen);

    for (i = 3; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        const char *k, *v;

        if (!eq) {
            return apr_psprintf(p, "ArkProvider %s: option '%s' is not "
                                "name=value", argv[0], argv[i]);
        }
        k = apr_pstrmemdup(p, argv[i], (apr_size_t)(eq - argv[i]));
        v = eq + 1;
        if (!strcmp(k, "key")) {
            if ((strncmp(v, "env:", 4) || !v[4])
                && (strncmp(v, "file:", 5) || v[5] != '/')) {
                return apr_psprintf(p, "ArkProvider %s: key= must be "
                                    "env:VARIABLE or file:/absolute/path "
                                    "(secrets are never written inline)",
                                    argv[0]);
            }
            prov->secret_source = v;
        }
        else if (!strcmp(k, "connect-timeout")) {
            if ((err = parse_timeout(&prov->connect_timeout, v, k, p))) {
                return err;
            }
        }
        else if (!strcmp(k, "timeout")) {
            if ((err = parse_timeout(&prov->timeout, v, k, p))) {
                return err;
            }
        }
        else {
            return apr_psprintf(p, "ArkProvider %s: unknown option '%s' "
                                "(expected key=, connect-timeout=, "
                                "timeout=)", argv[0], k);
        }
    }
    *pprov = prov;
    return NULL;
}

const char *ark_model_add(apr_hash_t *models, const char *alias,
                          const ark_provider_t *prov, const char *upstream,
                          apr_pool_t *p)
{
    ark_model_t *m;
    ark_channel_t *ch;

    if (!ark_name_valid(alias)) {
        return apr_psprintf(p, "ArkModel: invalid alias '%s' (1-128 "
                            "characters of A-Z a-z 0-9 . _ : / @ -)", alias);
    }
    if (upstream && (!*upstream || strlen(upstream) > 256
                     || strpbrk(upstream, " \t\"\\"))) {
        return apr_psprintf(p, "ArkModel %s: invalid upstream model name",
                            alias);
    }
    m = apr_hash_get(models, alias, APR_HASH_KEY_STRING);
    if (!m) {
        m = apr_pcalloc(p, sizeof(*m));
        m->alias = apr_pstrdup(p, alias);
        m->channels = apr_array_make(p, 2, sizeof(ark_channel_t));
        apr_hash_set(models, m->alias, APR_HASH_KEY_STRING, m);
    }
    ch = apr_array_push(m->channels);
    ch->provider = prov;
    ch->upstream_model = apr_pstrdup(p, upstream ? upstream : alias);
    return NULL;
}
