/* Configuration parsing helpers, free of httpd.
 *
 * The directive handlers in mod_ark.c are thin: they pass their
 * arguments here and return the error sentence these functions produce
 * (each names the directive and its valid values), so that every rule
 * about what a valid value is lives in one place and is unit-tested.
 */
#ifndef ARK_CONFIG_H
#define ARK_CONFIG_H

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "ark_provider.h"
#include "ark_route.h"
#include "ark_signals.h"

/* Defaults and bounds of the directives. */
#define ARK_DEFAULT_CONNECT_TIMEOUT apr_time_from_sec(5)
#define ARK_DEFAULT_TIMEOUT         apr_time_from_sec(300)
#define ARK_DEFAULT_MAX_BODY        (8 * 1024 * 1024)
#define ARK_MIN_MAX_BODY            1024
#define ARK_MAX_MAX_BODY            (1024L * 1024 * 1024)
#define ARK_MAX_TIMEOUT             apr_time_from_sec(3600)
/* Input limits (ArkMaxJsonDepth, ArkMaxJsonElements, ArkMaxMessages),
 * their bounds, and the longest API key looked up (longer ones are
 * refused with 401 without hashing). */
#define ARK_DEFAULT_MAX_JSON_DEPTH    64
#define ARK_MIN_MAX_JSON_DEPTH        8
#define ARK_MAX_MAX_JSON_DEPTH        2048    /* jansson's own limit */
#define ARK_DEFAULT_MAX_JSON_ELEMENTS 100000
#define ARK_MIN_MAX_JSON_ELEMENTS     100
#define ARK_MAX_MAX_JSON_ELEMENTS     1000000000
#define ARK_DEFAULT_MAX_MESSAGES      2048
#define ARK_MIN_MAX_MESSAGES          1
#define ARK_MAX_MAX_MESSAGES          1000000
#define ARK_MAX_API_KEY_LEN           512
/* ArkStreamIdleTimeout: default, and bounds (whole seconds) */
#define ARK_DEFAULT_STREAM_IDLE       apr_time_from_sec(60)
#define ARK_MIN_STREAM_IDLE           apr_time_from_sec(1)
#define ARK_MAX_STREAM_IDLE           apr_time_from_sec(3600)
/* Answers larger than this are refused as malformed (502). */
#define ARK_MAX_UPSTREAM_RESPONSE   (64 * 1024 * 1024)

/* A channel: one way to serve a model alias (one ArkModel line). */
typedef struct ark_channel_t {
    const char *name;                /* name=, else "provider/model" */
    const ark_provider_t *provider;
    const char *upstream_model;
    double price_in, price_out;      /* per 1M tokens; < 0: not set */
    double price_cached;             /* cached input; < 0: price_in */
    double cost_coef;                /* relative cost when no price */
    unsigned int weight;             /* for `weighted`, >= 1 */
    apr_array_header_t *tags;        /* ark_tag_t: provider's + own */
    unsigned int max_conns;          /* 0: no cap (from the provider) */
    int slot;                        /* index of its shared signals slot */
    const char *defined_at;
} ark_channel_t;

/* Routing policy of an alias or location (ArkRoute); unset fields are
 * taken from the next level: alias, location, server, built-in. */
typedef struct ark_route_policy_t {
    int strategy;                    /* ark_strategy_t, -1 unset */
    int hedge;                       /* 1 on, 0 off, -1 unset */
    apr_interval_time_t hedge_delay; /* 0: the channel's P95 TTFB */
    int max_attempts;                /* 0 unset */
    apr_interval_time_t deadline;    /* 0 unset */
} ark_route_policy_t;

#define ARK_DEFAULT_MAX_ATTEMPTS 3
#define ARK_MAX_MAX_ATTEMPTS     10
/* Hedge delay when a channel has no TTFB measurement yet. */
#define ARK_DEFAULT_HEDGE_DELAY  apr_time_from_msec(2000)

typedef struct ark_model_t {
    const char *alias;
    apr_array_header_t *channels;    /* ark_channel_t */
    ark_route_policy_t policy;       /* ArkRoute <alias> */
} ark_model_t;

/* Parses a duration: "250ms", "5s", "2m", "1h", or a plain number of
 * seconds, at most 100 days. Returns APR_SUCCESS or APR_EINVAL. */
apr_status_t ark_parse_duration(apr_interval_time_t *out, const char *s);

/* Parses a byte size: "512", "64K", "8M", "1G" (binary multiples).
 * Returns APR_SUCCESS or APR_EINVAL (also on overflow). */
apr_status_t ark_parse_size(apr_off_t *out, const char *s);

/* Parses the arguments of
 *   ArkProvider <name> <type> <base-url> [key=env:VAR|key=file:/path]
 *               [connect-timeout=DUR] [timeout=DUR] [plaintext=on|off]
 * into a new provider allocated from p. Returns NULL on success, else a
 * sentence naming the directive and what is wrong. The secret itself is
 * not read here (see ark_provider_load_secret). An http:// base URL needs
 * plaintext=on unless its host is a loopback address (see
 * ark_url_host_is_loopback). */
const char *ark_provider_parse(ark_provider_t **pprov, int argc,
                               char *const argv[], apr_pool_t *p);

/* Adds a channel for alias to models (alias -> ark_model_t), creating
 * the alias on first use, from the arguments of
 *   ArkModel <alias> <provider> [upstream-model] [price=IN/OUT[/CACHED]]
 *            [cost=COEF] [weight=N] [tags=k=v,...] [name=NAME]
 * where argv[0] is the alias and prov the resolved provider (argv[1]).
 * Returns NULL or an error sentence naming the directive. */
const char *ark_model_add(apr_hash_t *models, const ark_provider_t *prov,
                          int argc, char *const argv[], apr_pool_t *p);

/* Parses ArkRoute options (strategy=, hedge=off|on|DURATION,
 * attempts=N, deadline=DURATION) into *pol. Returns NULL or an error
 * sentence. */
const char *ark_route_policy_parse(ark_route_policy_t *pol, int argc,
                                   char *const argv[], apr_pool_t *p);

/* Fields of over that are set replace those of base, into *out. */
void ark_route_policy_merge(ark_route_policy_t *out,
                            const ark_route_policy_t *base,
                            const ark_route_policy_t *over);

/* Marks every field of *pol unset. */
void ark_route_policy_unset(ark_route_policy_t *pol);

/* Parses ArkScoreWeights arguments (cost=W latency=W reliability=W, each
 * 0..1, at least one > 0) into *w. Returns NULL or an error sentence. */
const char *ark_weights_parse(ark_weights_t *w, int argc, char *const argv[],
                              apr_pool_t *p);

/* Parses ArkCircuit arguments (failures=N error-ratio=R min-requests=N
 * window=DUR cooldown=DUR probes=N) into *bc, keeping fields not named.
 * Returns NULL or an error sentence. */
const char *ark_breaker_parse(ark_breaker_conf_t *bc, int argc,
                              char *const argv[], apr_pool_t *p);

/* Estimated cost of one request on a channel, in price units: the
 * prices per 1M tokens times the estimated input tokens (body bytes / 4)
 * and output tokens (max_tokens, or 256); cost_coef times all tokens
 * when the channel has no price. */
double ark_channel_cost(const ark_channel_t *ch, const ark_req_t *req);

/* True if s is a valid provider or model name: 1..128 characters of
 * [A-Za-z0-9._:/@-]. */
int ark_name_valid(const char *s);

/* True if the host of url ("scheme://[user@]host[:port][/path]") is a
 * loopback address: "localhost", an IPv4 address in 127.0.0.0/8, or
 * [::1]. Names are not resolved. */
int ark_url_host_is_loopback(const char *url);

/* Checks that path (absolute) is a readable file holding at least one
 * PEM certificate, for ArkCACertificateFile. Returns NULL, or a sentence
 * naming the directive, the path and what is wrong. */
const char *ark_ca_file_check(const char *path, apr_pool_t *p);

#endif /* ARK_CONFIG_H */
