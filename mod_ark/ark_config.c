/* Configuration parsing helpers. See ark_config.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <apr_file_io.h>
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

int ark_url_host_is_loopback(const char *url)
{
    const char *h = strstr(url, "://"), *end, *at;
    char host[64];
    unsigned char addr[16];
    apr_size_t n;

    if (!h) {
        return 0;
    }
    h += 3;
    end = h + strcspn(h, "/");
    at = memchr(h, '@', (apr_size_t)(end - h));
    while (at) {                        /* the host follows the last '@' */
        h = at + 1;
        at = memchr(h, '@', (apr_size_t)(end - h));
    }
    if (*h == '[') {                    /* [IPv6]:port */
        const char *close = memchr(h, ']', (apr_size_t)(end - h));

        if (!close) {
            return 0;
        }
        n = (apr_size_t)(close - h - 1);
        if (n >= sizeof(host)) {
            return 0;
        }
        memcpy(host, h + 1, n);
        host[n] = '\0';
        return inet_pton(AF_INET6, host, addr) == 1
               && !memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
    }
    n = strcspn(h, ":/");
    if (n >= sizeof(host)) {
        return 0;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    if (!strcasecmp(host, "localhost")) {
        return 1;
    }
    return inet_pton(AF_INET, host, addr) == 1 && addr[0] == 127;
}

/* The largest CA bundle read: the Mozilla bundle is about 200 KiB. */
#define ARK_CA_FILE_MAX (16 * 1024 * 1024)

const char *ark_ca_file_check(const char *path, apr_pool_t *p)
{
    apr_pool_t *tmp;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t got = 0;
    apr_status_t rv;
    char *buf, err[128];
    int found;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "ArkCACertificateFile: cannot read '%s': %s",
                            path, apr_strerror(rv, err, sizeof(err)));
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, f);
    if (rv != APR_SUCCESS || fi.filetype != APR_REG || fi.size <= 0
        || fi.size > ARK_CA_FILE_MAX) {
        apr_file_close(f);
        return apr_psprintf(p, "ArkCACertificateFile: '%s' is not a regular "
                            "file of 1 byte to 16 MiB", path);
    }
    /* the bundle is only looked at: read into a pool dropped at once */
    if (apr_pool_create(&tmp, p) != APR_SUCCESS) {
        apr_file_close(f);
        return "ArkCACertificateFile: out of memory";
    }
    buf = apr_palloc(tmp, (apr_size_t)fi.size + 1);
    rv = apr_file_read_full(f, buf, (apr_size_t)fi.size, &got);
    apr_file_close(f);
    buf[got] = '\0';
    found = strstr(buf, "-----BEGIN CERTIFICATE-----") != NULL;
    apr_pool_destroy(tmp);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        return apr_psprintf(p, "ArkCACertificateFile: cannot read '%s': %s",
                            path, apr_strerror(rv, err, sizeof(err)));
    }
    if (!found) {
        return apr_psprintf(p, "ArkCACertificateFile: '%s' holds no PEM "
                            "certificate (-----BEGIN CERTIFICATE-----)",
                            path);
    }
    return NULL;
}

static apr_status_t parse_uint(apr_int64_t *out, const char *v)
{
    char *end;

    if (!v || !apr_isdigit(*v)) {
        return APR_EINVAL;
    }
    errno = 0;
    *out = apr_strtoi64(v, &end, 10);
    return errno || *end ? APR_EINVAL : APR_SUCCESS;
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
    int i, plaintext = 0;

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
        else if (!strcmp(k, "tags")) {
            if ((err = ark_tags_parse(&prov->tags, v, p))) {
                return apr_psprintf(p, "ArkProvider %s: tags=: %s",
                                    argv[0], err);
            }
        }
        else if (!strcmp(k, "max-conns")) {
            apr_int64_t n;

            if (parse_uint(&n, v) != APR_SUCCESS || n < 1 || n > 100000) {
                return apr_psprintf(p, "ArkProvider %s: max-conns='%s' is "
                                    "not a number between 1 and 100000",
                                    argv[0], v);
            }
            prov->max_conns = (unsigned int)n;
        }
        else if (!strcmp(k, "plaintext")) {
            if (strcasecmp(v, "on") && strcasecmp(v, "off")) {
                return apr_psprintf(p, "ArkProvider %s: plaintext='%s' is "
                                    "not on or off", argv[0], v);
            }
            plaintext = !strcasecmp(v, "on");
        }
        else if (prov->type->check_option) {
            if ((err = prov->type->check_option(k, v, p))) {
                return apr_psprintf(p, "ArkProvider %s: %s", argv[0], err);
            }
            if (!prov->options) {
                prov->options = apr_table_make(p, 4);
            }
            apr_table_set(prov->options, k, v);
        }
        else {
            return apr_psprintf(p, "ArkProvider %s: unknown option '%s' "
                                "(expected key=, connect-timeout=, "
                                "timeout=, tags=, max-conns=, plaintext=)",
                                argv[0], k);
        }
    }
    /* requests carry the provider secret and the clients' prompts: in
     * clear text only when the admin says so, or on this host */
    if (!strncmp(url, "http://", 7) && !plaintext
        && !ark_url_host_is_loopback(url)) {
        return apr_psprintf(p, "ArkProvider %s: base URL '%s' is plain "
                            "http:// to a host that is not loopback: use "
                            "https://, or add plaintext=on to send requests "
                            "and the provider key unencrypted", argv[0],
                            url);
    }
    *pprov = prov;
    return NULL;
}

static apr_status_t parse_price(double *out, const char *v)
{
    char *end;
    double d = strtod(v, &end);

    if (end == v || *end || !(d >= 0.0) || d > 1e6) {
        return APR_EINVAL;
    }
    *out = d;
    return APR_SUCCESS;
}

const char *ark_model_add(apr_hash_t *models, const ark_provider_t *prov,
                          int argc, char *const argv[], apr_pool_t *p)
{
    const char *alias = argv[0], *upstream = NULL, *err;
    apr_array_header_t *own_tags = NULL;
    ark_channel_t ch;
    ark_model_t *m;
    int i;

    if (!ark_name_valid(alias)) {
        return apr_psprintf(p, "ArkModel: invalid alias '%s' (1-128 "
                            "characters of A-Z a-z 0-9 . _ : / @ -)", alias);
    }
    memset(&ch, 0, sizeof(ch));
    ch.provider = prov;
    ch.price_in = ch.price_out = ch.price_cached = -1.0;
    ch.cost_coef = 1.0;
    ch.weight = 1;
    ch.max_conns = prov->max_conns;
    i = 2;
    if (argc > 2 && !strchr(argv[2], '=')) {
        upstream = argv[2];
        i = 3;
        if (!*upstream || strlen(upstream) > 256
            || strpbrk(upstream, " \t\"\\")) {
            return apr_psprintf(p, "ArkModel %s: invalid upstream model "
                                "name", alias);
        }
    }
    for (; i < argc; i++) {
        const char *eq = strchr(argv[i], '='), *k, *v;

        if (!eq) {
            return apr_psprintf(p, "ArkModel %s: option '%s' is not "
                                "name=value", alias, argv[i]);
        }
        k = apr_pstrmemdup(p, argv[i], (apr_size_t)(eq - argv[i]));
        v = eq + 1;
        if (!strcmp(k, "price")) {
            const char *slash = strchr(v, '/');
            const char *slash2 = slash ? strchr(slash + 1, '/') : NULL;

            if (!slash
                || parse_price(&ch.price_in, apr_pstrmemdup(
                                   p, v, (apr_size_t)(slash - v)))
                || parse_price(&ch.price_out,
                               slash2 ? apr_pstrmemdup(
                                            p, slash + 1,
                                            (apr_size_t)(slash2 - slash - 1))
                                      : slash + 1)
                || (slash2 && parse_price(&ch.price_cached, slash2 + 1))) {
                return apr_psprintf(p, "ArkModel %s: price='%s' is not "
                                    "INPUT/OUTPUT[/CACHED-INPUT] prices per "
                                    "1M tokens, e.g. price=2.50/10 or "
                                    "price=2.50/10/1.25", alias, v);
            }
        }
        else if (!strcmp(k, "cost")) {
            if (parse_price(&ch.cost_coef, v)) {
                return apr_psprintf(p, "ArkModel %s: cost='%s' is not a "
                                    "non-negative number", alias, v);
            }
        }
        else if (!strcmp(k, "weight")) {
            apr_int64_t n;

            if (parse_uint(&n, v) != APR_SUCCESS || n < 1 || n > 10000) {
                return apr_psprintf(p, "ArkModel %s: weight='%s' is not a "
                                    "number between 1 and 10000", alias, v);
            }
            ch.weight = (unsigned int)n;
        }
        else if (!strcmp(k, "tags")) {
            if ((err = ark_tags_parse(&own_tags, v, p))) {
                return apr_psprintf(p, "ArkModel %s: tags=: %s", alias, err);
            }
        }
        else if (!strcmp(k, "name")) {
            if (!ark_name_valid(v)) {
                return apr_psprintf(p, "ArkModel %s: invalid channel name "
                                    "'%s'", alias, v);
            }
            ch.name = v;
        }
        else {
            return apr_psprintf(p, "ArkModel %s: unknown option '%s' "
                                "(expected price=, cost=, weight=, tags=, "
                                "name=)", alias, k);
        }
    }
    ch.upstream_model = apr_pstrdup(p, upstream ? upstream : alias);
    if (!ch.name) {
        ch.name = apr_pstrcat(p, prov->name, "/", ch.upstream_model, NULL);
    }
    ch.tags = apr_array_make(p, 4, sizeof(ark_tag_t));
    if (prov->tags) {
        apr_array_cat(ch.tags, prov->tags);
    }
    if (own_tags) {
        apr_array_cat(ch.tags, own_tags);
    }

    m = apr_hash_get(models, alias, APR_HASH_KEY_STRING);
    if (!m) {
        m = apr_pcalloc(p, sizeof(*m));
        m->alias = apr_pstrdup(p, alias);
        m->channels = apr_array_make(p, 2, sizeof(ark_channel_t));
        ark_route_policy_unset(&m->policy);
        apr_hash_set(models, m->alias, APR_HASH_KEY_STRING, m);
    }
    for (i = 0; i < m->channels->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(m->channels, i, ark_channel_t).name,
                    ch.name)) {
            return apr_psprintf(p, "ArkModel %s: channel '%s' is defined "
                                "twice (give one a name=)", alias, ch.name);
        }
    }
    *(ark_channel_t *)apr_array_push(m->channels) = ch;
    return NULL;
}

void ark_route_policy_unset(ark_route_policy_t *pol)
{
    pol->strategy = -1;
    pol->hedge = -1;
    pol->hedge_delay = 0;
    pol->max_attempts = 0;
    pol->deadline = 0;
}

void ark_route_policy_merge(ark_route_policy_t *out,
                            const ark_route_policy_t *base,
                            const ark_route_policy_t *over)
{
    ark_route_policy_t r = *base;

    if (over->strategy >= 0) {
        r.strategy = over->strategy;
    }
    if (over->hedge >= 0) {
        r.hedge = over->hedge;
        r.hedge_delay = over->hedge_delay;
    }
    if (over->max_attempts > 0) {
        r.max_attempts = over->max_attempts;
    }
    if (over->deadline > 0) {
        r.deadline = over->deadline;
    }
    *out = r;
}

const char *ark_route_policy_parse(ark_route_policy_t *pol, int argc,
                                   char *const argv[], apr_pool_t *p)
{
    int i;

    for (i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '='), *k, *v;

        if (!eq) {
            return apr_psprintf(p, "ArkRoute: option '%s' is not "
                                "name=value", argv[i]);
        }
        k = apr_pstrmemdup(p, argv[i], (apr_size_t)(eq - argv[i]));
        v = eq + 1;
        if (!strcmp(k, "strategy")) {
            pol->strategy = ark_strategy_parse(v);
            if (pol->strategy < 0) {
                return apr_psprintf(p, "ArkRoute: unknown strategy '%s' "
                                    "(expected score, fallback, weighted, "
                                    "least-latency or cost)", v);
            }
        }
        else if (!strcmp(k, "hedge")) {
            if (!strcmp(v, "off")) {
                pol->hedge = 0;
                pol->hedge_delay = 0;
            }
            else if (!strcmp(v, "on") || !strcmp(v, "p95")) {
                pol->hedge = 1;
                pol->hedge_delay = 0;
            }
            else if (ark_parse_duration(&pol->hedge_delay, v) == APR_SUCCESS
                     && pol->hedge_delay > 0
                     && pol->hedge_delay <= ARK_MAX_TIMEOUT) {
                pol->hedge = 1;
            }
            else {
                return apr_psprintf(p, "ArkRoute: hedge='%s' must be off, "
                                    "p95, or a delay such as 800ms", v);
            }
        }
        else if (!strcmp(k, "attempts")) {
            apr_int64_t n;

            if (parse_uint(&n, v) != APR_SUCCESS || n < 1
                || n > ARK_MAX_MAX_ATTEMPTS) {
                return apr_psprintf(p, "ArkRoute: attempts='%s' is not a "
                                    "number between 1 and %d", v,
                                    ARK_MAX_MAX_ATTEMPTS);
            }
            pol->max_attempts = (int)n;
        }
        else if (!strcmp(k, "deadline")) {
            if (ark_parse_duration(&pol->deadline, v) != APR_SUCCESS
                || pol->deadline <= 0 || pol->deadline > ARK_MAX_TIMEOUT) {
                return apr_psprintf(p, "ArkRoute: deadline='%s' is not a "
                                    "duration between 1ms and 1h", v);
            }
        }
        else {
            return apr_psprintf(p, "ArkRoute: unknown option '%s' (expected "
                                "strategy=, hedge=, attempts=, deadline=)",
                                k);
        }
    }
    return NULL;
}

static apr_status_t parse_fraction(double *out, const char *v)
{
    char *end;
    double d = strtod(v, &end);

    if (end == v || *end || !(d >= 0.0 && d <= 1.0)) {
        return APR_EINVAL;
    }
    *out = d;
    return APR_SUCCESS;
}

const char *ark_weights_parse(ark_weights_t *w, int argc, char *const argv[],
                              apr_pool_t *p)
{
    ark_weights_t r = { 0, 0, 0 };
    int i;

    for (i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        double *dst = NULL;

        if (eq && !strncmp(argv[i], "cost=", 5)) {
            dst = &r.cost;
        }
        else if (eq && !strncmp(argv[i], "latency=", 8)) {
            dst = &r.latency;
        }
        else if (eq && !strncmp(argv[i], "reliability=", 12)) {
            dst = &r.reliability;
        }
        if (!dst || parse_fraction(dst, eq + 1) != APR_SUCCESS) {
            return apr_psprintf(p, "ArkScoreWeights: '%s' is not cost=, "
                                "latency= or reliability= with a value "
                                "between 0 and 1", argv[i]);
        }
    }
    if (r.cost + r.latency + r.reliability <= 0.0) {
        return "ArkScoreWeights: at least one weight must be above 0";
    }
    *w = r;
    return NULL;
}

const char *ark_breaker_parse(ark_breaker_conf_t *bc, int argc,
                              char *const argv[], apr_pool_t *p)
{
    int i;

    for (i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '='), *k, *v;
        apr_int64_t n;

        if (!eq) {
            return apr_psprintf(p, "ArkCircuit: option '%s' is not "
                                "name=value", argv[i]);
        }
        k = apr_pstrmemdup(p, argv[i], (apr_size_t)(eq - argv[i]));
        v = eq + 1;
        if (!strcmp(k, "failures") || !strcmp(k, "min-requests")
            || !strcmp(k, "probes")) {
            if (parse_uint(&n, v) != APR_SUCCESS || n < 1 || n > 100000) {
                return apr_psprintf(p, "ArkCircuit: %s='%s' is not a "
                                    "number between 1 and 100000", k, v);
            }
            if (k[0] == 'f') {
                bc->failures = (unsigned int)n;
            }
            else if (k[0] == 'm') {
                bc->min_requests = (unsigned int)n;
            }
            else {
                bc->probes = (unsigned int)n;
            }
        }
        else if (!strcmp(k, "error-ratio")) {
            if (parse_fraction(&bc->error_ratio, v) != APR_SUCCESS
                || bc->error_ratio <= 0.0) {
                return apr_psprintf(p, "ArkCircuit: error-ratio='%s' is not "
                                    "a number in (0, 1] (1 disables the "
                                    "ratio rule)", v);
            }
        }
        else if (!strcmp(k, "window") || !strcmp(k, "cooldown")) {
            apr_interval_time_t t;

            if (ark_parse_duration(&t, v) != APR_SUCCESS
                || t < apr_time_from_msec(100) || t > ARK_MAX_TIMEOUT) {
                return apr_psprintf(p, "ArkCircuit: %s='%s' is not a "
                                    "duration between 100ms and 1h", k, v);
            }
            if (k[0] == 'w') {
                bc->window = t;
            }
            else {
                bc->cooldown = t;
            }
        }
        else {
            return apr_psprintf(p, "ArkCircuit: unknown option '%s' "
                                "(expected failures=, error-ratio=, "
                                "min-requests=, window=, cooldown=, "
                                "probes=)", k);
        }
    }
    return NULL;
}

double ark_channel_cost(const ark_channel_t *ch, const ark_req_t *req)
{
    double in = req ? (double)req->body_len / 4.0 : 256.0, out = 256.0;
    long mt = ark_req_max_out(req);

    if (mt > 0) {
        out = (double)mt;
    }
    if (ch->price_in >= 0 && ch->price_out >= 0) {
        return (ch->price_in * in + ch->price_out * out) / 1e6;
    }
    return ch->cost_coef * (in + out) / 1e6;
}
