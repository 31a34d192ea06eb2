/* mod_ark: the module record, directives and lifecycle hooks.
 *
 * Configuration is read and validated while httpd parses its config, so
 * `apachectl configtest` (and the check apache2ctl runs before every
 * graceful reload) catches a bad provider, a missing provider secret or
 * a broken keys file before any running server is touched. A graceful
 * reload re-reads everything, keys file and secrets included.
 *
 * Lifecycle: directives fill ark_server_conf_t (pconf); open_logs opens
 * the JSON access log as root; child_init creates the process's
 * upstream HTTP client; the handler (ark_handler.c) serves requests.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <apr_shm.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_expr.h>
#include <ap_mpm.h>

#include "mod_ark.h"

static ark_http_t *ark_http;   /* per child process, from child_init */
static ark_cache_client_t *ark_cache;   /* likewise, if configured */

ark_http_t *ark_http_client(void)
{
    return ark_http;
}

ark_cache_client_t *ark_cache_client(void)
{
    return ark_cache;
}

void ark_cache_policy_unset(ark_cache_policy_t *cp)
{
    cp->on = -1;
    cp->threshold = -1.0;
    cp->threshold_min = -1.0;
    cp->threshold_max = -1.0;
    cp->ttl = 0;
    cp->max_temp = -1.0;
    cp->text_mode = -1;
    cp->tool_calls = -1;
}

void ark_cache_policy_merge(ark_cache_policy_t *out,
                            const ark_cache_policy_t *base,
                            const ark_cache_policy_t *over)
{
    ark_cache_policy_t r = *base;

    if (over->on >= 0) {
        r.on = over->on;
    }
    if (over->threshold >= 0) {
        r.threshold = over->threshold;
    }
    if (over->threshold_min >= 0) {
        r.threshold_min = over->threshold_min;
        r.threshold_max = over->threshold_max;
    }
    if (over->ttl > 0) {
        r.ttl = over->ttl;
    }
    if (over->max_temp >= 0) {
        r.max_temp = over->max_temp;
    }
    if (over->text_mode >= 0) {
        r.text_mode = over->text_mode;
    }
    if (over->tool_calls >= 0) {
        r.tool_calls = over->tool_calls;
    }
    *out = r;
}

/* ------------------------------------------------------ config records */

static void *create_server_conf(apr_pool_t *p, server_rec *s)
{
    ark_server_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    (void)s;
    sc->providers = apr_hash_make(p);
    sc->models = apr_hash_make(p);
    sc->model_order = apr_array_make(p, 8, sizeof(const char *));
    static const ark_weights_t w[ARK_PRIO_COUNT] = {
        ARK_WEIGHTS_HIGH, ARK_WEIGHTS_NORMAL, ARK_WEIGHTS_LOW
    };
    static const ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;

    sc->connect_timeout = ARK_DEFAULT_CONNECT_TIMEOUT;
    sc->timeout = ARK_DEFAULT_TIMEOUT;
    sc->config_time = apr_time_now();
    memcpy(sc->weights, w, sizeof(w));
    sc->breaker = bc;
    ark_route_policy_unset(&sc->policy);
    sc->cache.servers = apr_array_make(p, 2, sizeof(const char *));
    sc->cache.connect_timeout = apr_time_from_msec(10);
    sc->cache.call_timeout = apr_time_from_msec(50);
    sc->cache.breaker_failures = 3;
    sc->cache.breaker_cooldown = apr_time_from_sec(10);
    sc->cache_models = apr_hash_make(p);
    return sc;
}

/* All Ark server directives are global: virtual hosts share the main
 * server's record. */
static void *merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    (void)p;
    (void)addv;
    return basev;
}

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    ark_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    (void)dir;
    dc->max_body = ARK_DEFAULT_MAX_BODY;
    ark_route_policy_unset(&dc->policy);
    ark_cache_policy_unset(&dc->cache);
    return dc;
}

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    ark_dir_conf_t *base = basev, *add = addv;
    ark_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    dc->max_body = add->max_body_set ? add->max_body : base->max_body;
    dc->max_body_set = add->max_body_set || base->max_body_set;
    ark_route_policy_merge(&dc->policy, &base->policy, &add->policy);
    ark_cache_policy_merge(&dc->cache, &base->cache, &add->cache);
    if (base->alias_policies && add->alias_policies) {
        dc->alias_policies = apr_hash_overlay(p, add->alias_policies,
                                              base->alias_policies);
    }
    else {
        dc->alias_policies = add->alias_policies ? add->alias_policies
                                                 : base->alias_policies;
    }
    return dc;
}

static ark_server_conf_t *server_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config, &ark_module);
}

static const char *where(cmd_parms *cmd)
{
    return apr_psprintf(cmd->pool, "%s:%d",
                        cmd->directive->filename, cmd->directive->line_num);
}

/* ---------------------------------------------------------- directives */

static const char *cmd_provider(cmd_parms *cmd, void *dc, int argc,
                                char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    ark_provider_t *prov;
    const char *err, *why;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if ((err = ark_provider_parse(&prov, argc, argv, cmd->pool))) {
        return err;
    }
    if (apr_hash_get(sc->providers, prov->name, APR_HASH_KEY_STRING)) {
        return apr_psprintf(cmd->pool, "ArkProvider: provider '%s' is "
                            "defined twice", prov->name);
    }
    if (ark_provider_load_secret(prov, &why, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ArkProvider %s: cannot load its "
                            "secret: %s", prov->name, why);
    }
    prov->defined_at = where(cmd);
    apr_hash_set(sc->providers, prov->name, APR_HASH_KEY_STRING, prov);
    return NULL;
}

static const char *cmd_model(cmd_parms *cmd, void *dc, int argc,
                             char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const ark_provider_t *prov;
    ark_model_t *m;
    const char *err;
    int is_new;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (argc < 2) {
        return "ArkModel takes <alias> <provider> [upstream-model] "
               "[price=IN/OUT] [cost=COEF] [weight=N] [tags=k=v,...] "
               "[name=NAME]";
    }
    prov = apr_hash_get(sc->providers, argv[1], APR_HASH_KEY_STRING);
    if (!prov) {
        return apr_psprintf(cmd->pool, "ArkModel %s: unknown provider '%s' "
                            "(declare it with ArkProvider before ArkModel)",
                            argv[0], argv[1]);
    }
    is_new = !apr_hash_get(sc->models, argv[0], APR_HASH_KEY_STRING);
    if ((err = ark_model_add(sc->models, prov, argc, argv, cmd->pool))) {
        return err;
    }
    m = apr_hash_get(sc->models, argv[0], APR_HASH_KEY_STRING);
    APR_ARRAY_IDX(m->channels, m->channels->nelts - 1,
                  ark_channel_t).defined_at = where(cmd);
    if (is_new) {
        APR_ARRAY_PUSH(sc->model_order, const char *) = m->alias;
    }
    return NULL;
}

static const char *cmd_route(cmd_parms *cmd, void *dcv, int argc,
                             char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    ark_dir_conf_t *dc = dcv;
    ark_route_policy_t pol, *dst;
    const char *err;

    if (argc < 2) {
        return "ArkRoute takes <alias|*> [strategy=NAME] [hedge=off|p95|DUR]"
               " [attempts=N] [deadline=DUR]";
    }
    ark_route_policy_unset(&pol);
    if ((err = ark_route_policy_parse(&pol, argc - 1, argv + 1,
                                      cmd->pool))) {
        return err;
    }
    if (!strcmp(argv[0], "*")) {
        dst = cmd->path ? &dc->policy : &sc->policy;
    }
    else if (cmd->path) {
        if (!dc->alias_policies) {
            dc->alias_policies = apr_hash_make(cmd->pool);
        }
        dst = apr_pcalloc(cmd->pool, sizeof(*dst));
        ark_route_policy_unset(dst);
        apr_hash_set(dc->alias_policies, apr_pstrdup(cmd->pool, argv[0]),
                     APR_HASH_KEY_STRING, dst);
    }
    else {
        ark_model_t *m = apr_hash_get(sc->models, argv[0],
                                      APR_HASH_KEY_STRING);

        if (!m) {
            return apr_psprintf(cmd->pool, "ArkRoute: unknown model alias "
                                "'%s' (declare it with ArkModel first, or "
                                "use * for all)", argv[0]);
        }
        dst = &m->policy;
    }
    ark_route_policy_merge(dst, dst, &pol);
    return NULL;
}

static const char *cmd_weights(cmd_parms *cmd, void *dc, int argc,
                               char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;
    int prio;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (argc < 2) {
        return "ArkScoreWeights takes <high|normal|low> cost=W latency=W "
               "reliability=W";
    }
    prio = ark_priority_parse(argv[0]);
    if (prio < 0) {
        return apr_psprintf(cmd->pool, "ArkScoreWeights: unknown priority "
                            "class '%s' (expected high, normal or low)",
                            argv[0]);
    }
    return ark_weights_parse(&sc->weights[prio], argc - 1, argv + 1,
                             cmd->pool);
}

static const char *cmd_circuit(cmd_parms *cmd, void *dc, int argc,
                               char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    return ark_breaker_parse(&sc->breaker, argc, argv, cmd->pool);
}

static const char *cmd_keys_file(cmd_parms *cmd, void *dc, const char *arg)
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *path, *why = NULL, *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path) {
        return apr_psprintf(cmd->pool, "ArkKeysFile: invalid path '%s'", arg);
    }
    if (ark_keys_load(&sc->keys, path, &why, cmd->pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "ArkKeysFile: %s",
                            why ? why : apr_pstrcat(cmd->pool, path,
                                                    ": cannot be read",
                                                    NULL));
    }
    sc->keys_path = path;
    return NULL;
}

static const char *cmd_access_log(cmd_parms *cmd, void *dc, const char *arg)
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (*arg == '|') {
        sc->access_log = arg;
    }
    else {
        sc->access_log = ap_server_root_relative(cmd->pool, arg);
        if (!sc->access_log) {
            return apr_psprintf(cmd->pool, "ArkAccessLog: invalid path "
                                "'%s'", arg);
        }
    }
    return NULL;
}

static const char *cmd_timeout(cmd_parms *cmd, void *dc, const char *arg)
{
    ark_server_conf_t *sc = server_conf(cmd);
    int is_connect = (cmd->info != NULL);
    apr_interval_time_t t;
    const char *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (ark_parse_duration(&t, arg) != APR_SUCCESS || t <= 0
        || t > ARK_MAX_TIMEOUT) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a duration between "
                            "1ms and 1h (e.g. 500ms, 10s, 5m)",
                            cmd->cmd->name, arg);
    }
    if (is_connect) {
        sc->connect_timeout = t;
    }
    else {
        sc->timeout = t;
    }
    return NULL;
}

static const char *cmd_upstream_client(cmd_parms *cmd, void *dc,
                                       const char *arg)
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (!strcasecmp(arg, "native")) {
        sc->upstream_curl = 0;
    }
    else if (!strcasecmp(arg, "curl")) {
        sc->upstream_curl = 1;
    }
    else {
        return apr_psprintf(cmd->pool, "ArkUpstreamClient: '%s' is not "
                            "native or curl", arg);
    }
    return NULL;
}

static const char *cmd_max_body(cmd_parms *cmd, void *dcv, const char *arg)
{
    ark_dir_conf_t *dc = dcv;
    apr_off_t n;

    if (ark_parse_size(&n, arg) != APR_SUCCESS || n < ARK_MIN_MAX_BODY
        || n > ARK_MAX_MAX_BODY) {
        return apr_psprintf(cmd->pool, "ArkMaxBodySize: '%s' is not a size "
                            "between 1K and 1G (e.g. 512K, 8M)", arg);
    }
    dc->max_body = n;
    dc->max_body_set = 1;
    return NULL;
}

/* ------------------------------------------------------ cache directives */

static const char *cmd_cache_server(cmd_parms *cmd, void *dc, int argc,
                                    char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;
    int i;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (argc < 1) {
        return "ArkCacheServer takes <host:port|unix:/path>... "
               "[password=env:VAR|password=file:/path]";
    }
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (!strncmp(a, "password=", 9)) {
            ark_provider_t tmp;
            const char *why;

            memset(&tmp, 0, sizeof(tmp));
            tmp.secret_source = a + 9;
            if ((strncmp(a + 9, "env:", 4) && strncmp(a + 9, "file:/", 6))
                || ark_provider_load_secret(&tmp, &why, cmd->pool)
                   != APR_SUCCESS) {
                return apr_psprintf(cmd->pool, "ArkCacheServer: password= "
                                    "must be env:VAR or file:/path naming a "
                                    "readable, non-empty secret");
            }
            sc->cache.password = tmp.secret;
            continue;
        }
        if (strncmp(a, "unix:/", 6)) {
            const char *colon = strrchr(a, ':');
            char *end;
            long port;

            if (!colon || colon == a) {
                return apr_psprintf(cmd->pool, "ArkCacheServer: '%s' is not "
                                    "host:port or unix:/path", a);
            }
            port = strtol(colon + 1, &end, 10);
            if (*end || port < 1 || port > 65535) {
                return apr_psprintf(cmd->pool, "ArkCacheServer: '%s' has no "
                                    "valid port", a);
            }
        }
        APR_ARRAY_PUSH(sc->cache.servers, const char *) = a;
    }
    if (sc->cache.servers->nelts == 0) {
        return "ArkCacheServer: no server address given";
    }
    return NULL;
}

static const char *cmd_cache_timeout(cmd_parms *cmd, void *dc, int argc,
                                     char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;
    int i;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    for (i = 0; i < argc; i++) {
        apr_interval_time_t t;
        const char *v = strchr(argv[i], '=');
        apr_interval_time_t *dst =
            !strncmp(argv[i], "connect=", 8) ? &sc->cache.connect_timeout
            : !strncmp(argv[i], "call=", 5) ? &sc->cache.call_timeout
            : NULL;

        if (!dst || ark_parse_duration(&t, v + 1) != APR_SUCCESS || t <= 0
            || t > apr_time_from_sec(10)) {
            return apr_psprintf(cmd->pool, "ArkCacheTimeout: '%s' is not "
                                "connect=DUR or call=DUR with a duration "
                                "between 1ms and 10s", argv[i]);
        }
        *dst = t;
    }
    return NULL;
}

static const char *cmd_cache_breaker(cmd_parms *cmd, void *dc, int argc,
                                     char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    ark_breaker_conf_t bc;
    const char *err;
    int i;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    for (i = 0; i < argc; i++) {
        if (strncmp(argv[i], "failures=", 9)
            && strncmp(argv[i], "cooldown=", 9)) {
            return apr_psprintf(cmd->pool, "ArkCacheBreaker: unknown option "
                                "'%s' (expected failures=, cooldown=)",
                                argv[i]);
        }
    }
    bc.failures = sc->cache.breaker_failures;
    bc.cooldown = sc->cache.breaker_cooldown;
    if ((err = ark_breaker_parse(&bc, argc, argv, cmd->pool))) {
        return apr_pstrcat(cmd->pool, "ArkCacheBreaker",
                           err + strlen("ArkCircuit"), NULL);
    }
    sc->cache.breaker_failures = bc.failures;
    sc->cache.breaker_cooldown = bc.cooldown;
    return NULL;
}

static const char *parse_threshold(double *out, const char *v,
                                   const char *directive, apr_pool_t *p)
{
    char *end;
    double d = strtod(v, &end);

    if (end == v || *end || !(d > 0.0 && d <= 1.0)) {
        return apr_psprintf(p, "%s: '%s' is not a similarity threshold in "
                            "(0, 1], e.g. 0.92", directive, v);
    }
    *out = d;
    return NULL;
}

/* Options shared by ArkCache (location) and ArkCacheModel (alias). */
static const char *cache_policy_parse(ark_cache_policy_t *cp, int argc,
                                      char *const argv[],
                                      const char *directive, apr_pool_t *p)
{
    const char *err;
    int i;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (!strcasecmp(a, "on") || !strcasecmp(a, "off")) {
            cp->on = !strcasecmp(a, "on");
        }
        else if (!strncmp(a, "threshold=", 10)) {
            if ((err = parse_threshold(&cp->threshold, a + 10, directive,
                                       p))) {
                return err;
            }
        }
        else if (!strncmp(a, "client-threshold=", 17)) {
            const char *dash = strchr(a + 17, '-');

            if (!dash
                || parse_threshold(&cp->threshold_min,
                                   apr_pstrmemdup(p, a + 17,
                                                  (apr_size_t)(dash - a - 17)),
                                   directive, p)
                || parse_threshold(&cp->threshold_max, dash + 1, directive,
                                   p)
                || cp->threshold_min > cp->threshold_max) {
                return apr_psprintf(p, "%s: client-threshold= takes MIN-MAX "
                                    "within (0, 1], e.g. 0.85-0.99",
                                    directive);
            }
        }
        else if (!strncmp(a, "ttl=", 4)) {
            apr_interval_time_t t;

            if (ark_parse_duration(&t, a + 4) != APR_SUCCESS
                || t < apr_time_from_sec(1)
                || t > apr_time_from_sec(30L * 24 * 3600)) {
                return apr_psprintf(p, "%s: ttl='%s' is not a duration "
                                    "between 1s and 30 days", directive,
                                    a + 4);
            }
            cp->ttl = (long)apr_time_sec(t);
        }
        else if (!strncmp(a, "max-temperature=", 16)) {
            char *end;

            cp->max_temp = strtod(a + 16, &end);
            if (end == a + 16 || *end || !(cp->max_temp >= 0.0
                                           && cp->max_temp <= 2.0)) {
                return apr_psprintf(p, "%s: max-temperature= takes a number "
                                    "between 0 and 2", directive);
            }
        }
        else if (!strncmp(a, "text=", 5)) {
            cp->text_mode = !strcmp(a + 5, "last-user")
                            ? ARK_CACHE_TEXT_LAST_USER
                            : !strcmp(a + 5, "all-user")
                              ? ARK_CACHE_TEXT_ALL_USER
                              : !strcmp(a + 5, "all") ? ARK_CACHE_TEXT_ALL
                                                      : -1;
            if (cp->text_mode < 0) {
                return apr_psprintf(p, "%s: text= takes last-user, all-user "
                                    "or all", directive);
            }
        }
        else if (!strncmp(a, "tool-calls=", 11)) {
            if (strcmp(a + 11, "on") && strcmp(a + 11, "off")) {
                return apr_psprintf(p, "%s: tool-calls= takes on or off",
                                    directive);
            }
            cp->tool_calls = !strcmp(a + 11, "on");
        }
        else {
            return apr_psprintf(p, "%s: unknown option '%s' (expected on, "
                                "off, threshold=, client-threshold=, ttl=, "
                                "max-temperature=, text=, tool-calls=)",
                                directive, a);
        }
    }
    return NULL;
}

static const char *cmd_cache(cmd_parms *cmd, void *dcv, int argc,
                             char *const argv[])
{
    ark_dir_conf_t *dc = dcv;

    if (argc < 1) {
        return "ArkCache takes on|off [threshold=T] [client-threshold=MIN-MAX]"
               " [ttl=DUR] [max-temperature=T] [text=last-user|all-user|all]"
               " [tool-calls=on|off]";
    }
    return cache_policy_parse(&dc->cache, argc, argv, "ArkCache",
                              cmd->pool);
}

static const char *cmd_cache_model(cmd_parms *cmd, void *dc, int argc,
                                   char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    ark_cache_policy_t *cp;
    const char *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (argc < 2) {
        return "ArkCacheModel takes <alias> on|off [threshold=T] [ttl=DUR] "
               "...";
    }
    if (!apr_hash_get(sc->models, argv[0], APR_HASH_KEY_STRING)) {
        return apr_psprintf(cmd->pool, "ArkCacheModel: unknown model alias "
                            "'%s' (declare it with ArkModel first)",
                            argv[0]);
    }
    cp = apr_pcalloc(cmd->pool, sizeof(*cp));
    ark_cache_policy_unset(cp);
    if ((err = cache_policy_parse(cp, argc - 1, argv + 1, "ArkCacheModel",
                                  cmd->pool))) {
        return err;
    }
    apr_hash_set(sc->cache_models, argv[0], APR_HASH_KEY_STRING, cp);
    return NULL;
}

static const command_rec ark_cmds[] = {
    AP_INIT_TAKE_ARGV("ArkProvider", cmd_provider, NULL, RSRC_CONF,
        "<name> <type> <base-url> [key=env:VAR|key=file:/path] "
        "[connect-timeout=DUR] [timeout=DUR]: declares an upstream provider"),
    AP_INIT_TAKE_ARGV("ArkModel", cmd_model, NULL, RSRC_CONF,
        "<alias> <provider> [upstream-model] [price=IN/OUT] [cost=COEF] "
        "[weight=N] [tags=k=v,...] [name=NAME]: adds a channel serving a "
        "model alias"),
    AP_INIT_TAKE_ARGV("ArkRoute", cmd_route, NULL, RSRC_CONF | ACCESS_CONF,
        "<alias|*> [strategy=score|fallback|weighted|least-latency|cost] "
        "[hedge=off|p95|DUR] [attempts=N] [deadline=DUR]: routing policy"),
    AP_INIT_TAKE_ARGV("ArkScoreWeights", cmd_weights, NULL, RSRC_CONF,
        "<high|normal|low> cost=W latency=W reliability=W: score weights of "
        "a priority class"),
    AP_INIT_TAKE_ARGV("ArkCacheServer", cmd_cache_server, NULL, RSRC_CONF,
        "<host:port|unix:/path>... [password=env:VAR|file:/path]: "
        "ark-cached servers"),
    AP_INIT_TAKE_ARGV("ArkCacheTimeout", cmd_cache_timeout, NULL, RSRC_CONF,
        "connect=DUR call=DUR: ark-cached timeouts (default 10ms, 50ms)"),
    AP_INIT_TAKE_ARGV("ArkCacheBreaker", cmd_cache_breaker, NULL, RSRC_CONF,
        "failures=N cooldown=DUR: stop asking ark-cached after failures"),
    AP_INIT_TAKE_ARGV("ArkCache", cmd_cache, NULL, RSRC_CONF | ACCESS_CONF,
        "on|off [threshold=T] [client-threshold=MIN-MAX] [ttl=DUR] "
        "[max-temperature=T] [text=...] [tool-calls=on|off]: the semantic "
        "cache for this location"),
    AP_INIT_TAKE_ARGV("ArkCacheModel", cmd_cache_model, NULL, RSRC_CONF,
        "<alias> on|off [threshold=T] [ttl=DUR] ...: cache settings of a "
        "model alias"),
    AP_INIT_TAKE_ARGV("ArkCircuit", cmd_circuit, NULL, RSRC_CONF,
        "failures=N error-ratio=R min-requests=N window=DUR cooldown=DUR "
        "probes=N: circuit breaker thresholds"),
    AP_INIT_TAKE1("ArkKeysFile", cmd_keys_file, NULL, RSRC_CONF,
        "file of virtual keys managed with ark-keys"),
    AP_INIT_TAKE1("ArkAccessLog", cmd_access_log, NULL, RSRC_CONF,
        "file or |pipe receiving one JSON line per gateway request"),
    AP_INIT_TAKE1("ArkConnectTimeout", cmd_timeout, (void *)1, RSRC_CONF,
        "default upstream connect timeout (default 5s)"),
    AP_INIT_TAKE1("ArkTimeout", cmd_timeout, NULL, RSRC_CONF,
        "default upstream total timeout (default 300s)"),
    AP_INIT_TAKE1("ArkUpstreamClient", cmd_upstream_client, NULL, RSRC_CONF,
        "native (default: built-in HTTP/1.1 client for http:// upstreams) "
        "or curl (libcurl for every upstream)"),
    AP_INIT_TAKE1("ArkMaxBodySize", cmd_max_body, NULL, RSRC_CONF | ACCESS_CONF,
        "largest accepted request body (default 8M)"),
    { NULL }
};

/* --------------------------------------------------------------- hooks */

static int ark_open_logs(apr_pool_t *pconf, apr_pool_t *plog,
                         apr_pool_t *ptemp, server_rec *s)
{
    ark_server_conf_t *sc = ap_get_module_config(s->module_config,
                                                 &ark_module);
    apr_status_t rv;

    (void)plog;
    (void)ptemp;
    sc->access_fd = NULL;
    if (!sc->access_log) {
        return OK;
    }
    if (sc->access_log[0] == '|') {
        piped_log *pl = ap_open_piped_log(pconf, sc->access_log + 1);

        if (!pl) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, ARKLOGNO(00001)
                         "ArkAccessLog: cannot start piped log program");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        sc->access_fd = ap_piped_log_write_fd(pl);
        return OK;
    }
    rv = apr_file_open(&sc->access_fd, sc->access_log,
                       APR_FOPEN_WRITE | APR_FOPEN_APPEND | APR_FOPEN_CREATE
                       | APR_FOPEN_LARGEFILE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD,
                       pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, ARKLOGNO(00002)
                     "ArkAccessLog: cannot open %s", sc->access_log);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Gives every channel a slot of live signals in one anonymous shared
 * memory segment, inherited by all children. Made anew on each
 * (graceful) restart: the channels may have changed. */
static int create_signals(ark_server_conf_t *sc, apr_pool_t *pconf,
                          server_rec *s)
{
    apr_hash_index_t *hi;
    apr_shm_t *shm;
    apr_size_t size;
    apr_status_t rv;
    int n = 0, i;

    for (hi = apr_hash_first(pconf, sc->models); hi; hi = apr_hash_next(hi)) {
        ark_model_t *m = apr_hash_this_val(hi);

        for (i = 0; i < m->channels->nelts; i++) {
            APR_ARRAY_IDX(m->channels, i, ark_channel_t).slot = n++;
        }
    }
    sc->nslots = n;
    size = sizeof(ark_chan_slot_t) * (apr_size_t)(n > 0 ? n : 1);
    rv = apr_shm_create(&shm, size, NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, ARKLOGNO(00006)
                     "cannot create %" APR_SIZE_T_FMT " bytes of shared "
                     "memory for channel signals", size);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    sc->slots = apr_shm_baseaddr_get(shm);
    for (i = 0; i < (n > 0 ? n : 1); i++) {
        ark_sig_init(&sc->slots[i]);
    }
    return OK;
}

static int ark_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    ark_server_conf_t *sc = ap_get_module_config(s->module_config,
                                                 &ark_module);

    (void)pconf;
    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;                   /* first of the two startup passes */
    }
    if (create_signals(sc, pconf, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (apr_hash_count(sc->models) > 0 && !sc->keys) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ARKLOGNO(00003)
                     "models are configured but no ArkKeysFile: every "
                     "gateway request will be refused with 401");
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, ARKLOGNO(00004)
                 "mod_ark configured: %u providers, %u models, %d keys; %s",
                 apr_hash_count(sc->providers), apr_hash_count(sc->models),
                 sc->keys ? ark_keys_count(sc->keys) : 0,
                 ark_http_version());
    return OK;
}

static void ark_child_init(apr_pool_t *pchild, server_rec *s)
{
    ark_server_conf_t *sc = ap_get_module_config(s->module_config,
                                                 &ark_module);
    int threads = 0;

    ark_cache = NULL;
    if (sc->cache.servers->nelts > 0) {
        ark_cache_client_conf_t cc = sc->cache;

        cc.max_idle = 64;
        ark_cache_client_create(&ark_cache, &cc, pchild);
    }

    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    if (ark_http_create(&ark_http, threads > 0 ? threads * 2 : 64, pchild)
        != APR_SUCCESS) {
        ark_http = NULL;
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, ARKLOGNO(00005)
                     "cannot initialise libcurl: gateway requests will "
                     "fail with 500");
    }
    else {
        ark_http_set_native(ark_http, !sc->upstream_curl);
    }
}

static int ark_handler(request_rec *r)
{
    if (!r->handler) {
        return DECLINED;
    }
    if (!strcmp(r->handler, ARK_HANDLER_GATEWAY)) {
        return ark_gateway_handler(r);
    }
    if (!strcmp(r->handler, ARK_HANDLER_METRICS)) {
        return ark_metrics_handler(r);
    }
    return DECLINED;
}

/* Requests for Ark's handlers name no file: skip the core's directory
 * walk (a stat of every path component and an .htaccess probe per
 * directory), as mod_proxy does for proxied locations. SetHandler is only
 * known once the <Location> sections are merged, so the location walk is
 * done here (the core reuses its result). <Directory> sections and
 * .htaccess files therefore never apply to Ark's locations. */
static int ark_map_to_storage(request_rec *r)
{
    core_dir_config *d;
    const char *h, *err = NULL;

    if (ap_location_walk(r) != OK) {
        return DECLINED;
    }
    d = ap_get_core_module_config(r->per_dir_config);
    if (!d || !d->expr_handler) {
        return DECLINED;
    }
    h = ap_expr_str_exec(r, d->expr_handler, &err);
    if (!err && h && (!strcmp(h, ARK_HANDLER_GATEWAY)
                      || !strcmp(h, ARK_HANDLER_METRICS))) {
        return OK;
    }
    return DECLINED;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_map_to_storage(ark_map_to_storage, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_open_logs(ark_open_logs, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(ark_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(ark_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(ark_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(ark_log_transaction, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(ark) = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,
    merge_dir_conf,
    create_server_conf,
    merge_server_conf,
    ark_cmds,
    register_hooks,
    AP_MODULE_FLAG_NONE
};
