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

#include <errno.h>

#include <apr_lib.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_expr.h>
#include <ap_mpm.h>
#include <mpm_common.h>

#include "mod_ark.h"
#include "../common/sentinel.h"

static ark_http_t *ark_http;   /* per child process, from child_init */
static ark_cache_client_t *ark_cache;   /* likewise, if configured */
static ark_cache_queue_t *ark_cache_stores;  /* its background stores */
static ark_govern_t *ark_gov;          /* likewise */
static void *ark_gov_shm;              /* governance table, from post_config */
static ark_trace_exporter_t *ark_tracer;   /* per child, if ArkTraceExport */
static ark_journal_t *ark_jrnl;        /* in-flight journal, post_config */

ark_journal_t *ark_journal_get(void)
{
    return ark_jrnl;
}

ark_trace_exporter_t *ark_trace_exporter(void)
{
    return ark_tracer;
}

ark_govern_t *ark_govern_client(void)
{
    return ark_gov;
}

ark_http_t *ark_http_client(void)
{
    return ark_http;
}

ark_cache_client_t *ark_cache_client(void)
{
    return ark_cache;
}

ark_cache_queue_t *ark_cache_queue(void)
{
    return ark_cache_stores;
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
    sc->stream_idle = ARK_DEFAULT_STREAM_IDLE;
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
    ark_govern_conf_init(&sc->govern);
    sc->govern.redis.servers = apr_array_make(p, 2, sizeof(const char *));
    sc->journal_slots = ARK_JOURNAL_DEFAULT_SLOTS;
    ark_trace_export_conf_init(&sc->trace_export);
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
    dc->log_bodies = -1;
    dc->remote_user = -1;
    return dc;
}

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    ark_dir_conf_t *base = basev, *add = addv;
    ark_dir_conf_t *dc = apr_pcalloc(p, sizeof(*dc));

    dc->max_body = add->max_body_set ? add->max_body : base->max_body;
    dc->max_body_set = add->max_body_set || base->max_body_set;
    dc->max_json_depth = add->max_json_depth ? add->max_json_depth
                                             : base->max_json_depth;
    dc->max_json_elements = add->max_json_elements ? add->max_json_elements
                                                   : base->max_json_elements;
    dc->max_messages = add->max_messages ? add->max_messages
                                         : base->max_messages;
    dc->log_bodies = add->log_bodies >= 0 ? add->log_bodies
                                          : base->log_bodies;
    dc->remote_user = add->remote_user >= 0 ? add->remote_user
                                            : base->remote_user;
    dc->log_body_max = add->log_body_max ? add->log_body_max
                                         : base->log_body_max;
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
    /* Outside any section of a virtual host, the directive fills that
     * host's default per-directory configuration, which httpd merges into
     * every request of the host: the server-wide policy is global (the
     * models live in the main server), so a virtual host's copy of it
     * would be dropped. */
    int per_dir = cmd->path || cmd->server->is_virtual;

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
        dst = per_dir ? &dc->policy : &sc->policy;
    }
    else if (per_dir) {
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
    if (ark_keys_check_mode(path, &why, cmd->pool) == APR_EACCES) {
        return apr_psprintf(cmd->pool, "ArkKeysFile: %s", why);
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

static const char *cmd_trace_export(cmd_parms *cmd, void *dc, int argc,
                                    char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    return ark_trace_export_conf_parse(&sc->trace_export, argc, argv,
                                       cmd->pool);
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

/* ArkMaxJsonDepth, ArkMaxJsonElements, ArkMaxMessages: cmd->info says
 * which (0, 1, 2). */
static const char *cmd_json_limit(cmd_parms *cmd, void *dcv, const char *arg)
{
    static const apr_int64_t bounds[3][2] = {
        { ARK_MIN_MAX_JSON_DEPTH, ARK_MAX_MAX_JSON_DEPTH },
        { ARK_MIN_MAX_JSON_ELEMENTS, ARK_MAX_MAX_JSON_ELEMENTS },
        { ARK_MIN_MAX_MESSAGES, ARK_MAX_MAX_MESSAGES }
    };
    ark_dir_conf_t *dc = dcv;
    int which = (int)(apr_uintptr_t)cmd->info;
    apr_int64_t n;
    char *end;

    n = apr_strtoi64(arg, &end, 10);
    if (!apr_isdigit(*arg) || *end || n < bounds[which][0]
        || n > bounds[which][1]) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number between %"
                            APR_INT64_T_FMT " and %" APR_INT64_T_FMT,
                            cmd->cmd->name, arg, bounds[which][0],
                            bounds[which][1]);
    }
    if (which == 0) {
        dc->max_json_depth = (int)n;
    }
    else if (which == 1) {
        dc->max_json_elements = (apr_size_t)n;
    }
    else {
        dc->max_messages = (apr_size_t)n;
    }
    return NULL;
}

static const char *cmd_stream_idle(cmd_parms *cmd, void *dc, const char *arg)
{
    ark_server_conf_t *sc = server_conf(cmd);
    apr_interval_time_t t;
    const char *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (!strcasecmp(arg, "off")) {
        sc->stream_idle = 0;
        return NULL;
    }
    if (ark_parse_duration(&t, arg) != APR_SUCCESS
        || t < ARK_MIN_STREAM_IDLE || t > ARK_MAX_STREAM_IDLE
        || t % APR_USEC_PER_SEC) {
        return apr_psprintf(cmd->pool, "ArkStreamIdleTimeout: '%s' is not "
                            "off or a whole number of seconds between 1s "
                            "and 1h (e.g. 30s, 2m)", arg);
    }
    sc->stream_idle = t;
    return NULL;
}

static const char *cmd_ca_file(cmd_parms *cmd, void *dc, const char *arg)
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *path, *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (!path) {
        return apr_psprintf(cmd->pool, "ArkCACertificateFile: invalid path "
                            "'%s'", arg);
    }
    if ((err = ark_ca_file_check(path, cmd->pool))) {
        return err;
    }
    sc->ca_file = path;
    return NULL;
}

static const char *cmd_remote_user(cmd_parms *cmd, void *dcv, int on)
{
    ark_dir_conf_t *dc = dcv;

    (void)cmd;
    dc->remote_user = on;
    return NULL;
}

static const char *cmd_log_bodies(cmd_parms *cmd, void *dcv, int argc,
                                  char *const argv[])
{
    ark_dir_conf_t *dc = dcv;
    int i;

    if (argc < 1) {
        return "ArkLogBodies takes off|request|response|both [max=SIZE]";
    }
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        apr_off_t n;

        if (!strcasecmp(a, "off")) {
            dc->log_bodies = 0;
        }
        else if (!strcasecmp(a, "request")) {
            dc->log_bodies = ARK_LOG_BODY_REQUEST;
        }
        else if (!strcasecmp(a, "response")) {
            dc->log_bodies = ARK_LOG_BODY_RESPONSE;
        }
        else if (!strcasecmp(a, "both")) {
            dc->log_bodies = ARK_LOG_BODY_REQUEST | ARK_LOG_BODY_RESPONSE;
        }
        else if (!strncasecmp(a, "max=", 4)
                 && ark_parse_size(&n, a + 4) == APR_SUCCESS && n >= 64
                 && n <= 1024 * 1024) {
            dc->log_body_max = (apr_size_t)n;
        }
        else {
            return apr_psprintf(cmd->pool, "ArkLogBodies: '%s' is not off, "
                                "request, response, both or max=SIZE "
                                "(64 to 1M)", a);
        }
    }
    return NULL;
}

/* ------------------------------------------------------ cache directives */

/* Parses "<host:port|unix:/path>... [password=env:VAR|file:/path]" into
 * a RESP client configuration (ArkCacheServer, ArkGovernRedis). */
static const char *parse_resp_servers(ark_cache_client_conf_t *conf,
                                      const char *directive, int argc,
                                      char *const argv[], apr_pool_t *p)
{
    int i;

    if (argc < 1) {
        return apr_pstrcat(p, directive, " takes <host:port|unix:/path>... "
                           "[password=env:VAR|password=file:/path]", NULL);
    }
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (!strncmp(a, "password=", 9)) {
            ark_provider_t tmp;
            const char *why;

            memset(&tmp, 0, sizeof(tmp));
            tmp.secret_source = a + 9;
            if ((strncmp(a + 9, "env:", 4) && strncmp(a + 9, "file:/", 6))
                || ark_provider_load_secret(&tmp, &why, p)
                   != APR_SUCCESS) {
                return apr_psprintf(p, "%s: password= must be env:VAR "
                                    "or file:/path naming a readable, "
                                    "non-empty secret", directive);
            }
            conf->password = tmp.secret;
            continue;
        }
        if (strncmp(a, "unix:/", 6)) {
            const char *colon = strrchr(a, ':');
            char *end;
            long port;

            if (!colon || colon == a) {
                return apr_psprintf(p, "%s: '%s' is not host:port or "
                                    "unix:/path", directive, a);
            }
            port = strtol(colon + 1, &end, 10);
            if (*end || port < 1 || port > 65535) {
                return apr_psprintf(p, "%s: '%s' has no valid port",
                                    directive, a);
            }
        }
        APR_ARRAY_PUSH(conf->servers, const char *) = a;
    }
    if (conf->servers->nelts == 0) {
        return apr_pstrcat(p, directive, ": no server address given",
                           NULL);
    }
    return NULL;
}

static const char *cmd_cache_server(cmd_parms *cmd, void *dc, int argc,
                                    char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    return parse_resp_servers(&sc->cache, "ArkCacheServer", argc, argv,
                              cmd->pool);
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

/* ------------------------------------------------------ governance */

static const char *parse_count(apr_int64_t *out, const char *v,
                               apr_int64_t min, apr_int64_t max,
                               const char *what, apr_pool_t *p);

/* Loads a password=/sentinel-password= source (env:VAR or file:/path). */
static const char *load_secret_opt(const char **out, const char *src,
                                   const char *what, apr_pool_t *p)
{
    ark_provider_t tmp;
    const char *why;

    memset(&tmp, 0, sizeof(tmp));
    tmp.secret_source = src;
    if ((strncmp(src, "env:", 4) && strncmp(src, "file:/", 6))
        || ark_provider_load_secret(&tmp, &why, p) != APR_SUCCESS) {
        return apr_psprintf(p, "ArkGovernRedis: %s= must be env:VAR or "
                            "file:/path naming a readable, non-empty secret",
                            what);
    }
    *out = tmp.secret;
    return NULL;
}

/* ArkGovernRedis: the parse_resp_servers syntax, plus sentinel=NAME
 * (the addresses are then Redis Sentinels of master NAME),
 * sentinel-password=SRC, wait-replicas=N and done-ttl=SECONDS. */
static const char *cmd_govern_redis(cmd_parms *cmd, void *dc, int argc,
                                    char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    ark_cache_client_conf_t *rc = &sc->govern.redis;
    char **rest = apr_pcalloc(cmd->pool, sizeof(char *) * (apr_size_t)(argc
                                                                      + 1));
    const char *err;
    int i, n = 0;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (!strncmp(a, "sentinel=", 9)) {
            if (!a[9] || strlen(a + 9) >= SENTINEL_NAME_LEN
                || strpbrk(a + 9, " \t")) {
                return apr_psprintf(cmd->pool, "ArkGovernRedis: sentinel= "
                                    "takes the master name the Sentinels "
                                    "know (1 to %d characters)",
                                    SENTINEL_NAME_LEN - 1);
            }
            rc->sentinel_master = a + 9;
        }
        else if (!strncmp(a, "sentinel-password=", 18)) {
            if ((err = load_secret_opt(&rc->sentinel_password, a + 18,
                                       "sentinel-password", cmd->pool))) {
                return err;
            }
        }
        else if (!strncmp(a, "done-ttl=", 9)) {
            apr_int64_t s;

            if ((err = parse_count(&s, a + 9, 60, 400L * 86400,
                                   "ArkGovernRedis: done-ttl (seconds)",
                                   cmd->pool))) {
                return err;
            }
            sc->govern.done_ttl = apr_time_from_sec(s);
        }
        else if (!strncmp(a, "wait-replicas=", 14)) {
            apr_int64_t w;

            if ((err = parse_count(&w, a + 14, 0, 16,
                                   "ArkGovernRedis: wait-replicas",
                                   cmd->pool))) {
                return err;
            }
            rc->wait_replicas = (int)w;
        }
        else {
            rest[n++] = argv[i];
        }
    }
    if ((err = parse_resp_servers(rc, "ArkGovernRedis", n, rest,
                                  cmd->pool))) {
        return err;
    }
    if (rc->sentinel_master) {
        for (i = 0; i < rc->servers->nelts; i++) {
            const char *a = APR_ARRAY_IDX(rc->servers, i, const char *);
            sentinel_addr_t sa;

            if (sentinel_addr_parse(&sa, a, strlen(a)) != 0) {
                return apr_psprintf(cmd->pool, "ArkGovernRedis: with "
                                    "sentinel= every address is a Sentinel's "
                                    "host:port ('%s' is not)", a);
            }
        }
        if (rc->servers->nelts > SENTINEL_MAX) {
            return apr_psprintf(cmd->pool, "ArkGovernRedis: at most %d "
                                "Sentinels", SENTINEL_MAX);
        }
    }
    else if (rc->sentinel_password) {
        return "ArkGovernRedis: sentinel-password= needs sentinel=NAME";
    }
    return NULL;
}

/* A whole number in [min, max], or a message naming the directive. */
static const char *parse_count(apr_int64_t *out, const char *v,
                               apr_int64_t min, apr_int64_t max,
                               const char *what, apr_pool_t *p)
{
    char *end;
    apr_int64_t n;

    errno = 0;
    n = apr_strtoi64(v, &end, 10);
    if (end == v || *end || errno || n < min || n > max) {
        return apr_psprintf(p, "%s: '%s' is not a whole number between %"
                            APR_INT64_T_FMT " and %" APR_INT64_T_FMT, what,
                            v, min, max);
    }
    *out = n;
    return NULL;
}

static const char *cmd_govern(cmd_parms *cmd, void *dc, const char *arg)
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *which = cmd->cmd->name, *err;
    apr_interval_time_t t;
    apr_int64_t n;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (!strcasecmp(which, "ArkGovernTimeout")) {
        if (ark_parse_duration(&t, arg) != APR_SUCCESS || t <= 0
            || t > apr_time_from_sec(10)) {
            return apr_psprintf(cmd->pool, "ArkGovernTimeout: '%s' is not "
                                "a duration between 1ms and 10s", arg);
        }
        sc->govern.redis.connect_timeout = sc->govern.redis.call_timeout = t;
    }
    else if (!strcasecmp(which, "ArkGovernPrefix")) {
        if (!*arg || strlen(arg) > 32 || strpbrk(arg, " \t\r\n")) {
            return "ArkGovernPrefix: 1 to 32 characters without blanks";
        }
        sc->govern.prefix = arg;
    }
    else if (!strcasecmp(which, "ArkGovernNodes")) {
        if ((err = parse_count(&n, arg, 1, 1000, which, cmd->pool))) {
            return err;
        }
        sc->govern.nodes = (int)n;
    }
    else if (!strcasecmp(which, "ArkGovernLease")) {
        if (ark_parse_duration(&t, arg) != APR_SUCCESS
            || t < apr_time_from_sec(10) || t > apr_time_from_sec(86400)) {
            return apr_psprintf(cmd->pool, "ArkGovernLease: '%s' is not a "
                                "duration between 10s and 24h", arg);
        }
        sc->govern.lease = t;
    }
    else if (!strcasecmp(which, "ArkGovernSlots")) {
        if ((err = parse_count(&n, arg, 64, 1 << 24, which, cmd->pool))) {
            return err;
        }
        sc->govern.slots = (int)n;
    }
    else if (!strcasecmp(which, "ArkTokenEstimate")) {
        if ((err = parse_count(&n, arg, 1, 10000000, which, cmd->pool))) {
            return err;
        }
        sc->govern.token_estimate = (long)n;
    }
    else if (!strcasecmp(which, "ArkBudgetOnRedisDown")) {
        if (strcasecmp(arg, "open") && strcasecmp(arg, "closed")) {
            return "ArkBudgetOnRedisDown takes open or closed";
        }
        sc->govern.budget_fail_closed = !strcasecmp(arg, "closed");
    }
    return NULL;
}

/* ArkGovernJournal <path>|off [slots=N] */
static const char *cmd_journal(cmd_parms *cmd, void *dc, int argc,
                               char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;
    apr_int64_t n;
    int i;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (argc < 1 || argc > 2) {
        return "ArkGovernJournal takes a file path or off, and optionally "
               "slots=N";
    }
    if (!strcasecmp(argv[0], "off")) {
        sc->journal_path = "";
    }
    else {
        sc->journal_path = ap_runtime_dir_relative(cmd->pool, argv[0]);
        if (!sc->journal_path) {
            return apr_psprintf(cmd->pool, "ArkGovernJournal: invalid "
                                "path '%s'", argv[0]);
        }
    }
    for (i = 1; i < argc; i++) {
        if (strncasecmp(argv[i], "slots=", 6)) {
            return apr_psprintf(cmd->pool, "ArkGovernJournal: unknown "
                                "option '%s' (slots=N)", argv[i]);
        }
        if ((err = parse_count(&n, argv[i] + 6, ARK_JOURNAL_MIN_SLOTS,
                               ARK_JOURNAL_MAX_SLOTS, "ArkGovernJournal "
                               "slots", cmd->pool))) {
            return err;
        }
        sc->journal_slots = (int)n;
    }
    return NULL;
}

static const char *cmd_limit_default(cmd_parms *cmd, void *dc, int argc,
                                     char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    ark_limits_t *l = &sc->govern.defaults;
    const char *err;
    int i;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    for (i = 0; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        apr_size_t k = eq ? (apr_size_t)(eq - a) : 0;
        apr_int64_t *dst = NULL;
        int money = 0;

        if (!eq) {
            dst = NULL;
        }
        else if (k == 3 && !strncmp(a, "rpm", 3)) {
            dst = &l->rpm;
        }
        else if (k == 3 && !strncmp(a, "tpm", 3)) {
            dst = &l->tpm;
        }
        else if (k == 11 && !strncmp(a, "concurrency", 11)) {
            dst = &l->concurrency;
        }
        else if (k == 10 && !strncmp(a, "budget_day", 10)) {
            dst = &l->budget_day;
            money = 1;
        }
        else if (k == 12 && !strncmp(a, "budget_month", 12)) {
            dst = &l->budget_month;
            money = 1;
        }
        if (!dst) {
            return apr_psprintf(cmd->pool, "ArkLimitDefault: unknown option "
                                "'%s' (expected rpm=, tpm=, concurrency=, "
                                "budget_day=, budget_month=)", a);
        }
        if (money) {
            if (ark_money_parse(dst, eq + 1) != APR_SUCCESS || *dst <= 0) {
                return apr_psprintf(cmd->pool, "ArkLimitDefault: '%s' is not "
                                    "a positive amount with at most 9 "
                                    "decimals", a);
            }
        }
        else if ((err = parse_count(dst, eq + 1, 1, 1000000000000LL,
                                    "ArkLimitDefault", cmd->pool))) {
            return err;
        }
    }
    return NULL;
}

static const char *cmd_budget_shift(cmd_parms *cmd, void *dc, int argc,
                                    char *const argv[])
{
    ark_server_conf_t *sc = server_conf(cmd);
    const char *err;
    char *end;
    double pct;

    (void)dc;
    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY))) {
        return err;
    }
    if (argc < 2) {
        return "ArkBudgetShift takes <percent> cost=W latency=W "
               "reliability=W";
    }
    pct = strtod(argv[0], &end);
    if (end == argv[0] || (*end && strcmp(end, "%")) || !(pct > 0)
        || pct > 100) {
        return apr_psprintf(cmd->pool, "ArkBudgetShift: '%s' is not a "
                            "percentage in (0, 100]", argv[0]);
    }
    sc->shift_weights = sc->weights[ARK_PRIO_NORMAL];
    if ((err = ark_weights_parse(&sc->shift_weights, argc - 1, argv + 1,
                                 cmd->pool))) {
        return apr_pstrcat(cmd->pool, "ArkBudgetShift: ", err, NULL);
    }
    sc->shift_ratio = pct / 100.0;
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
    AP_INIT_TAKE_ARGV("ArkGovernRedis", cmd_govern_redis, NULL, RSRC_CONF,
        "[sentinel=MASTER] <host:port|unix:/path>... "
        "[password=env:VAR|file:/path] [sentinel-password=...] "
        "[wait-replicas=N] [done-ttl=SECONDS]: the Redis shared by all "
        "nodes for limits, budgets and spend (with sentinel=: its "
        "Sentinels)"),
    AP_INIT_TAKE1("ArkGovernTimeout", cmd_govern, NULL, RSRC_CONF,
        "connect and call timeout towards the governance Redis "
        "(default 250ms)"),
    AP_INIT_TAKE1("ArkGovernPrefix", cmd_govern, NULL, RSRC_CONF,
        "prefix of every governance key in Redis (default ark:)"),
    AP_INIT_TAKE1("ArkGovernNodes", cmd_govern, NULL, RSRC_CONF,
        "gateway nodes sharing the limits: each enforces limit/N locally "
        "while Redis is unreachable (default 1)"),
    AP_INIT_TAKE1("ArkGovernLease", cmd_govern, NULL, RSRC_CONF,
        "lifetime of a concurrency slot whose node died (default 10m)"),
    AP_INIT_TAKE1("ArkGovernSlots", cmd_govern, NULL, RSRC_CONF,
        "size of the node-local counter table (default 16384)"),
    AP_INIT_TAKE_ARGV("ArkGovernJournal", cmd_journal, NULL, RSRC_CONF,
        "<path>|off [slots=N]: the crash-safe journal of requests in "
        "flight, so that a node's death does not lose their spend "
        "(default ark-journal in DefaultRuntimeDir, 4096 slots)"),
    AP_INIT_TAKE1("ArkTokenEstimate", cmd_govern, NULL, RSRC_CONF,
        "output tokens reserved for a request without max_tokens "
        "(default 256)"),
    AP_INIT_TAKE1("ArkBudgetOnRedisDown", cmd_govern, NULL, RSRC_CONF,
        "open|closed: admit or refuse budgeted keys while Redis is "
        "unreachable (default open)"),
    AP_INIT_TAKE_ARGV("ArkLimitDefault", cmd_limit_default, NULL, RSRC_CONF,
        "rpm=N tpm=N concurrency=N budget_day=X budget_month=X: limits of "
        "keys that set none"),
    AP_INIT_TAKE_ARGV("ArkBudgetShift", cmd_budget_shift, NULL, RSRC_CONF,
        "<percent> cost=W latency=W reliability=W: score weights once spend "
        "reaches that share of a budget"),
    AP_INIT_TAKE1("ArkKeysFile", cmd_keys_file, NULL, RSRC_CONF,
        "file of virtual keys managed with ark-keys"),
    AP_INIT_TAKE1("ArkAccessLog", cmd_access_log, NULL, RSRC_CONF,
        "file or |pipe receiving one JSON line per gateway request"),
    AP_INIT_TAKE_ARGV("ArkTraceExport", cmd_trace_export, NULL, RSRC_CONF,
        "<http://host:port/v1/traces> [timeout=DUR] [batch=N] | off: OTLP "
        "JSON export of request and upstream attempt spans"),
    AP_INIT_TAKE1("ArkConnectTimeout", cmd_timeout, (void *)1, RSRC_CONF,
        "default upstream connect timeout (default 5s)"),
    AP_INIT_TAKE1("ArkTimeout", cmd_timeout, NULL, RSRC_CONF,
        "default upstream total timeout (default 300s)"),
    AP_INIT_FLAG("ArkAuthRemoteUser", cmd_remote_user, NULL,
        RSRC_CONF | ACCESS_CONF,
        "on: a request without an Ark key is served as the key named like "
        "the user another httpd auth module authenticated (default off)"),
    AP_INIT_TAKE_ARGV("ArkLogBodies", cmd_log_bodies, NULL,
        RSRC_CONF | ACCESS_CONF,
        "off|request|response|both [max=SIZE]: put redacted request and/or "
        "response bodies in the access log (default off, max 16K each)"),
    AP_INIT_TAKE1("ArkUpstreamClient", cmd_upstream_client, NULL, RSRC_CONF,
        "native (default: built-in HTTP/1.1 client for http:// upstreams) "
        "or curl (libcurl for every upstream)"),
    AP_INIT_TAKE1("ArkMaxBodySize", cmd_max_body, NULL, RSRC_CONF | ACCESS_CONF,
        "largest accepted request body (default 8M)"),
    AP_INIT_TAKE1("ArkMaxJsonDepth", cmd_json_limit, (void *)0,
        RSRC_CONF | ACCESS_CONF,
        "deepest nesting of objects and arrays in a request body "
        "(default 64)"),
    AP_INIT_TAKE1("ArkMaxJsonElements", cmd_json_limit, (void *)1,
        RSRC_CONF | ACCESS_CONF,
        "most array items plus object members in a request body "
        "(default 100000)"),
    AP_INIT_TAKE1("ArkMaxMessages", cmd_json_limit, (void *)2,
        RSRC_CONF | ACCESS_CONF,
        "most messages in a chat request (default 2048)"),
    AP_INIT_TAKE1("ArkStreamIdleTimeout", cmd_stream_idle, NULL, RSRC_CONF,
        "abort a relayed stream when the upstream sends nothing for this "
        "long (default 60s, or off)"),
    AP_INIT_TAKE1("ArkCACertificateFile", cmd_ca_file, NULL, RSRC_CONF,
        "PEM file of the CA certificates trusted for https:// upstreams "
        "(default: libcurl's bundle)"),
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

/* The governance table lives in the process pool: it survives graceful
 * restarts, so spend buffered while Redis is down is never dropped by a
 * reload. Its size is fixed at the first start. */
static int create_govern_shm(ark_server_conf_t *sc, server_rec *s)
{
    static const char *const tag = "ark_govern_shm";
    apr_pool_t *pp = s->process->pool;
    apr_shm_t *shm = NULL;
    apr_status_t rv;
    apr_size_t size;

    apr_pool_userdata_get((void **)&shm, tag, pp);
    if (shm) {
        ark_gov_shm = apr_shm_baseaddr_get(shm);
        return OK;
    }
    size = ark_govern_shm_size(sc->govern.slots);
    rv = apr_shm_create(&shm, size, NULL, pp);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, ARKLOGNO(00007)
                     "cannot create %" APR_SIZE_T_FMT " bytes of shared "
                     "memory for governance counters", size);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ark_gov_shm = apr_shm_baseaddr_get(shm);
    ark_govern_shm_init(ark_gov_shm, sc->govern.slots);
    apr_pool_userdata_set(shm, tag, apr_pool_cleanup_null, pp);
    return OK;
}

/* ------------------------------------------------- in-flight journal */

/* Replay state of one walk over the journal (the parent). */
typedef struct replay_ctx_t {
    ark_server_conf_t *sc;
    server_rec *s;
    apr_pool_t *pool;
    ark_govern_t *g;                   /* made on the first orphan */
    int estimate, known;
    apr_int64_t est_tokens, known_tokens;
    const char *est_list;              /* "<done id> P/C/spend, ..." */
} replay_ctx_t;

/* Estimated requests named in one summary line (the rest counted). */
#define REPLAY_LOG_NAMED 16

static void govern_redis_event(void *baton, int warn, const char *msg);

static int replay_one(void *ctx, const ark_journal_entry_t *e)
{
    replay_ctx_t *c = ctx;
    apr_pool_t *sp;
    int ok;

    if (!c->g) {
        ark_govern_conf_t gc = c->sc->govern;

        gc.redis.on_event = govern_redis_event;
        gc.redis.baton = c->s;
        if (ark_govern_create(&c->g, &gc, ark_gov_shm, c->pool)
            != APR_SUCCESS) {
            c->g = NULL;
            return 0;
        }
    }
    if (!ark_govern_has_redis(c->g)) {
        return 1;                      /* no Redis: nothing to bill into */
    }
    apr_pool_create(&sp, c->pool);
    ok = ark_govern_replay_entry(c->g, e, sp);
    apr_pool_destroy(sp);
    if (ok && e->state == ARK_JSLOT_ESTIMATE) {
        c->estimate++;
        c->est_tokens += e->v[1] + e->v[2];
        if (c->estimate <= REPLAY_LOG_NAMED) {
            c->est_list = apr_psprintf(c->pool, "%s%s%s key '%s' %"
                                       APR_INT64_T_FMT "/%" APR_INT64_T_FMT
                                       "/%" APR_INT64_T_FMT,
                                       c->est_list ? c->est_list : "",
                                       c->est_list ? ", " : "", e->done,
                                       e->key, e->v[1], e->v[2], e->v[4]);
        }
    }
    else if (ok) {
        c->known++;
        c->known_tokens += e->v[1] + e->v[2];
    }
    return ok;
}

/* Settles the journal's orphans (fresh: the server is starting, nothing
 * of ours runs) and logs what was done. */
static void journal_replay(ark_server_conf_t *sc, server_rec *s, int fresh,
                           apr_pool_t *p)
{
    static apr_time_t last_warn;
    replay_ctx_t c;
    int left = 0;

    memset(&c, 0, sizeof(c));
    c.sc = sc;
    c.s = s;
    apr_pool_create(&c.pool, p);
    ark_journal_replay(ark_jrnl, fresh, replay_one, &c, &left);
    if (c.estimate + c.known > 0) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, ARKLOGNO(00105)
                     "in-flight journal: billed %d request(s) of dead "
                     "gateway processes: %d at their actual usage (%"
                     APR_INT64_T_FMT " tokens), %d at the estimate (%"
                     APR_INT64_T_FMT " tokens, an upper bound)%s%s%s",
                     c.estimate + c.known, c.known, c.known_tokens,
                     c.estimate, c.est_tokens,
                     c.est_list ? ": " : "", c.est_list ? c.est_list : "",
                     c.estimate > REPLAY_LOG_NAMED ? ", ..." : "");
    }
    if (left > 0 && apr_time_now() - last_warn >= ARK_GOVERN_LOG_INTERVAL) {
        last_warn = apr_time_now();
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ARKLOGNO(00109)
                     "in-flight journal: %d request(s) of dead gateway "
                     "processes could not be billed, the governance Redis "
                     "is unreachable (%s); kept and retried",
                     left, c.g ? ark_govern_last_error(c.g) : "no client");
    }
    apr_pool_destroy(c.pool);
}

/* Opens the journal once per server process (it survives graceful
 * restarts, like the governance table) and, at a fresh start, bills
 * what the previous run left in flight. Failure is logged: the server
 * runs without a journal. */
static void journal_open(ark_server_conf_t *sc, server_rec *s,
                         apr_pool_t *ptemp)
{
    static const char *const tag = "ark_journal";
    apr_pool_t *pp = s->process->pool;
    const char *path = sc->journal_path, *rejected = NULL;
    ark_journal_t *j = NULL;
    apr_status_t rv;
    int fresh;

    if (path && !*path) {
        ark_jrnl = NULL;               /* ArkGovernJournal off */
        return;
    }
    if (!sc->govern.redis.servers || sc->govern.redis.servers->nelts == 0) {
        ark_jrnl = NULL;               /* spend is node-local anyway */
        return;
    }
    if (!path) {
        path = ap_runtime_dir_relative(ptemp, ARK_JOURNAL_DEFAULT_FILE);
    }
    apr_pool_userdata_get((void **)&j, tag, pp);
    fresh = j == NULL;
    if (j && !strcmp(ark_journal_path(j), path)) {
        ark_jrnl = j;
        return;
    }
    rv = ark_journal_open(&j, path, sc->journal_slots, &rejected, pp);
    if (rejected) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ARKLOGNO(00107)
                     "ArkGovernJournal: %s is not an in-flight journal of "
                     "this version: moved aside to %s, not replayed",
                     path, rejected);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ARKLOGNO(00108)
                     "ArkGovernJournal: cannot open %s: spend of requests "
                     "in flight when a process dies is lost", path);
        ark_jrnl = NULL;
        return;
    }
    ark_jrnl = j;
    apr_pool_userdata_set(j, tag, apr_pool_cleanup_null, pp);
    if (fresh) {
        journal_replay(sc, s, 1, ptemp);
    }
}

/* The parent, about once a second: bills the requests of children that
 * died (a crash, the OOM killer), every ARK_JOURNAL_SCAN seconds. */
#define ARK_JOURNAL_SCAN apr_time_from_sec(2)

static int ark_monitor(apr_pool_t *p, server_rec *s)
{
    static apr_time_t last;
    ark_server_conf_t *sc = ap_get_module_config(s->module_config,
                                                 &ark_module);
    apr_time_t now = apr_time_now();

    if (!ark_jrnl || now - last < ARK_JOURNAL_SCAN) {
        return DECLINED;
    }
    last = now;
    journal_replay(sc, s, 0, p);
    return DECLINED;
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
    if (create_signals(sc, pconf, s) != OK
        || create_govern_shm(sc, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    journal_open(sc, s, ptemp);
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

/* Failure reports of the cache store thread (once a minute). */
static void cache_store_log(void *baton, const char *msg)
{
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, (server_rec *)baton,
                 ARKLOGNO(00053) "%s", msg);
}

/* Failure reports of the span exporter's thread (once a minute). */
static void trace_export_log(void *baton, const char *msg)
{
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, (server_rec *)baton,
                 ARKLOGNO(00090) "%s", msg);
}

/* Starts the process's span exporter when ArkTraceExport is set. */
static void trace_export_start(ark_server_conf_t *sc, apr_pool_t *pchild,
                               server_rec *s)
{
    char host[APRMAXHOSTLEN + 1];
    apr_status_t rv;

    ark_tracer = NULL;
    if (!sc->trace_export.url) {
        return;
    }
    if (apr_gethostname(host, sizeof(host), pchild) != APR_SUCCESS) {
        host[0] = '\0';
    }
    rv = ark_trace_exporter_create(&ark_tracer, &sc->trace_export, "ark",
                                   ARK_VERSION, host[0] ? host : NULL,
                                   trace_export_log, s, pchild);
    if (rv != APR_SUCCESS) {
        ark_tracer = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, ARKLOGNO(00091)
                     "ArkTraceExport: the span exporter could not start: "
                     "spans of this process are not exported");
    }
}

/* Sentinel news from the governance Redis client (any thread). */
static void govern_redis_event(void *baton, int warn, const char *msg)
{
    server_rec *s = baton;

    if (warn) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ARKLOGNO(00092)
                     "governance Redis: %s", msg);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, ARKLOGNO(00093)
                     "governance Redis: %s", msg);
    }
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
    ark_cache_stores = NULL;
    if (ark_cache
        && ark_cache_queue_create(&ark_cache_stores, ark_cache, 0,
                                  cache_store_log, s, pchild)
           != APR_SUCCESS) {
        ark_cache_stores = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ARKLOGNO(00100)
                     "the cache store thread could not start: this "
                     "process stores answers on the request's thread");
    }

    ark_journal_set_owner();
    ark_gov = NULL;
    sc->govern.redis.on_event = govern_redis_event;
    sc->govern.redis.baton = s;
    if (ark_govern_create(&ark_gov, &sc->govern, ark_gov_shm, pchild)
        != APR_SUCCESS) {
        ark_gov = NULL;
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, ARKLOGNO(00008)
                     "governance counters unavailable: limits and budgets "
                     "are not enforced by this process");
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
        if (sc->ca_file) {
            apr_file_t *f;

            ark_http_set_ca_file(ark_http, sc->ca_file);
            /* checked as root at config time; libcurl reads it as User */
            if (apr_file_open(&f, sc->ca_file, APR_FOPEN_READ,
                              APR_FPROT_OS_DEFAULT, pchild) != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, ARKLOGNO(00082)
                             "ArkCACertificateFile %s is not readable by "
                             "the httpd user: https:// upstreams will fail",
                             sc->ca_file);
            }
            else {
                apr_file_close(f);
            }
        }
    }
    trace_export_start(sc, pchild, s);
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
    if (!strcmp(r->handler, ARK_HANDLER_STATUS)) {
        return ark_status_handler(r);
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
                      || !strcmp(h, ARK_HANDLER_METRICS)
                      || !strcmp(h, ARK_HANDLER_STATUS))) {
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
    ap_hook_monitor(ark_monitor, NULL, NULL, APR_HOOK_MIDDLE);
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
