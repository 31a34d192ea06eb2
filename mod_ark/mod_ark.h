/* mod_ark glue: configuration records and the functions shared between
 * the module record (mod_ark.c) and the request handler
 * (ark_handler.c). Only glue files include httpd headers.
 */
#ifndef MOD_ARK_H
#define MOD_ARK_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "ark_cache.h"
#include "ark_cache_client.h"
#include "ark_cache_queue.h"
#include "ark_config.h"
#include "ark_route.h"
#include "ark_signals.h"
#include "ark_error.h"
#include "ark_govern.h"
#include "ark_http.h"
#include "ark_keys.h"
#include "ark_trace_export.h"

/* Our own log message numbers: "ARK00042: " as httpd's APLOGNO does. */
#define ARKLOGNO(n) "ARK" #n ": "

/* Handler names for SetHandler. */
#define ARK_HANDLER_GATEWAY "ark-gateway"
#define ARK_HANDLER_METRICS "ark-metrics"
#define ARK_HANDLER_STATUS  "ark-status"

/* Server-wide configuration. Every Ark server directive is global (main
 * server only), so all virtual hosts share this one record. */
typedef struct ark_server_conf_t {
    apr_hash_t *providers;            /* name -> ark_provider_t * */
    apr_hash_t *models;               /* alias -> ark_model_t * */
    apr_array_header_t *model_order;  /* const char * aliases, config order */
    const char *keys_path;
    ark_keyring_t *keys;              /* parsed when ArkKeysFile is read */
    const char *access_log;           /* path, or "|command" */
    apr_file_t *access_fd;            /* opened in open_logs */
    apr_interval_time_t connect_timeout;
    apr_interval_time_t timeout;
    apr_interval_time_t stream_idle;  /* ArkStreamIdleTimeout, 0: off */
    const char *ca_file;              /* ArkCACertificateFile, or NULL */
    int upstream_curl;                /* ArkUpstreamClient curl: libcurl
                                       * also for http:// upstreams */
    apr_time_t config_time;           /* when this config was read */
    ark_weights_t weights[ARK_PRIO_COUNT];   /* ArkScoreWeights */
    ark_breaker_conf_t breaker;       /* ArkCircuit */
    ark_route_policy_t policy;        /* ArkRoute * (server level) */
    int nslots;                       /* channels with a signals slot */
    ark_chan_slot_t *slots;           /* shared memory, from post_config */
    ark_cache_client_conf_t cache;    /* ArkCacheServer, ArkCacheTimeout,
                                       * ArkCacheBreaker */
    const char *cache_password_source;
    apr_hash_t *cache_models;         /* alias -> ark_cache_policy_t * */
    ark_govern_conf_t govern;         /* ArkGovern*, ArkLimitDefault, ... */
    double shift_ratio;               /* ArkBudgetShift, 0: off */
    ark_weights_t shift_weights;
    ark_trace_export_conf_t trace_export;   /* ArkTraceExport */
    const char *journal_path;         /* ArkGovernJournal, NULL: default,
                                       * "": off */
    int journal_slots;
} ark_server_conf_t;

/* Default ArkGovernJournal file, under DefaultRuntimeDir. */
#define ARK_JOURNAL_DEFAULT_FILE "ark-journal"

/* Cache settings of a location or alias; unset fields (< 0, NULL) come
 * from the next level: alias, location, built-in. */
typedef struct ark_cache_policy_t {
    int on;                           /* ArkCache on|off, -1 unset */
    double threshold;                 /* ArkCacheThreshold, < 0 unset */
    double threshold_min, threshold_max;   /* client range, < 0 unset */
    long ttl;                         /* seconds, 0 unset */
    double max_temp;                  /* ArkCacheMaxTemperature, < 0 unset */
    int text_mode;                    /* ark_cache_text_t, -1 unset */
    int tool_calls;                   /* ArkCacheToolCalls, -1 unset */
} ark_cache_policy_t;

#define ARK_CACHE_DEFAULT_THRESHOLD 0.90
#define ARK_CACHE_DEFAULT_TTL       3600
#define ARK_CACHE_LOG_INTERVAL      apr_time_from_sec(60)

/* Per-directory configuration, with "was it set" bits for merging. */
typedef struct ark_dir_conf_t {
    apr_off_t max_body;
    int max_json_depth;               /* ArkMaxJsonDepth, 0 unset */
    apr_size_t max_json_elements;     /* ArkMaxJsonElements, 0 unset */
    apr_size_t max_messages;          /* ArkMaxMessages, 0 unset */
    ark_route_policy_t policy;        /* ArkRoute * in this location */
    apr_hash_t *alias_policies;       /* alias -> ark_route_policy_t * */
    ark_cache_policy_t cache;
    int log_bodies;                   /* ArkLogBodies: ARK_LOG_BODY_* bits,
                                       * -1 unset (off) */
    apr_size_t log_body_max;          /* bytes kept of each, after
                                       * redaction; 0 unset */
    int remote_user;                  /* ArkAuthRemoteUser: 1 on, 0 off,
                                       * -1 unset (off) */
    unsigned int max_body_set : 1;
} ark_dir_conf_t;

/* ArkLogBodies bits. */
#define ARK_LOG_BODY_REQUEST  1
#define ARK_LOG_BODY_RESPONSE 2
#define ARK_LOG_BODY_DEFAULT_MAX (16 * 1024)

/* Marks every field unset; merges over onto base into out. */
void ark_cache_policy_unset(ark_cache_policy_t *cp);
void ark_cache_policy_merge(ark_cache_policy_t *out,
                            const ark_cache_policy_t *base,
                            const ark_cache_policy_t *over);

extern module AP_MODULE_DECLARE_DATA ark_module;

/* The process's upstream HTTP client, created in child_init. */
ark_http_t *ark_http_client(void);

/* The process's ark-cached client, or NULL when no ArkCacheServer. */
ark_cache_client_t *ark_cache_client(void);
/* The child's background cache stores (NULL: none; store inline). */
ark_cache_queue_t *ark_cache_queue(void);

/* Node statistics in the governance table (ark_govern_stat_*): per key
 * and per tenant, fields ARK_SF_*; spend today per tenant and provider
 * (fields 0 spend_nano, 1 requests); cache counters (fields 0 lookups,
 * 1 hits, 2 misses, 3 bypasses, 4 errors, 5 skipped, 6 lookup
 * microseconds). */
#define ARK_STAT_KEY          "m:k:"
#define ARK_STAT_TENANT       "m:t:"
#define ARK_STAT_DAY_TENANT   "d:t:"
#define ARK_STAT_DAY_PROVIDER "d:p:"
#define ARK_STAT_CACHE        "c:cache"
enum {
    ARK_SF_REQUESTS = 0, ARK_SF_PROMPT, ARK_SF_COMPLETION, ARK_SF_SPEND,
    ARK_SF_CACHE_HITS, ARK_SF_REF_RATE, ARK_SF_REF_CONC, ARK_SF_REF_BUDGET
};

/* The process's governance client, created in child_init. */
ark_govern_t *ark_govern_client(void);

/* The node's in-flight journal (ArkGovernJournal), or NULL when off or
 * not open. */
ark_journal_t *ark_journal_get(void);

/* The process's span exporter, or NULL when ArkTraceExport is off
 * (counters: ark_trace_exporter_counters). */
ark_trace_exporter_t *ark_trace_exporter(void);

/* The request handler (ark_handler.c). */
int ark_gateway_handler(request_rec *r);

/* The metrics handler (ark_metrics.c). */
int ark_metrics_handler(request_rec *r);

/* The status page handler (ark_metrics.c). */
int ark_status_handler(request_rec *r);

/* Writes the access log line of r, if the request went through the
 * gateway handler (log_transaction hook). */
int ark_log_transaction(request_rec *r);

#endif /* MOD_ARK_H */
