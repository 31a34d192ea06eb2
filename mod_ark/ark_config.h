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

/* Defaults and bounds of the directives. */
#define ARK_DEFAULT_CONNECT_TIMEOUT apr_time_from_sec(5)
#define ARK_DEFAULT_TIMEOUT         apr_time_from_sec(300)
#define ARK_DEFAULT_MAX_BODY        (8 * 1024 * 1024)
#define ARK_MIN_MAX_BODY            1024
#define ARK_MAX_MAX_BODY            (1024L * 1024 * 1024)
#define ARK_MAX_TIMEOUT             apr_time_from_sec(3600)
/* Answers larger than this are refused as malformed (502). */
#define ARK_MAX_UPSTREAM_RESPONSE   (64 * 1024 * 1024)

/* A model alias and the channels that serve it (one per ArkModel line). */
typedef struct ark_channel_t {
    const ark_provider_t *provider;
    const char *upstream_model;
} ark_channel_t;

typedef struct ark_model_t {
    const char *alias;
    apr_array_header_t *channels;    /* ark_channel_t */
} ark_model_t;

/* Parses a duration: "250ms", "5s", "2m", "1h", or a plain number of
 * seconds, at most 100 days. Returns APR_SUCCESS or APR_EINVAL. */
apr_status_t ark_parse_duration(apr_interval_time_t *out, const char *s);

/* Parses a byte size: "512", "64K", "8M", "1G" (binary multiples).
 * Returns APR_SUCCESS or APR_EINVAL (also on overflow). */
apr_status_t ark_parse_size(apr_off_t *out, const char *s);

/* Parses the arguments of
 *   ArkProvider <name> <type> <base-url> [key=env:VAR|key=file:/path]
 *               [connect-timeout=DUR] [timeout=DUR]
 * into a new provider allocated from p. Returns NULL on success, else a
 * sentence naming the directive and what is wrong. The secret itself is
 * not read here (see ark_provider_load_secret). */
const char *ark_provider_parse(ark_provider_t **pprov, int argc,
                               char *const argv[], apr_pool_t *p);

/* Adds the channel (provider, upstream model) for alias to models
 * (alias -> ark_model_t), creating the alias on first use. upstream may
 * be NULL (same name as the alias). Returns NULL or an error sentence. */
const char *ark_model_add(apr_hash_t *models, const char *alias,
                          const ark_provider_t *prov, const char *upstream,
                          apr_pool_t *p);

/* True if s is a valid provider or model name: 1..128 characters of
 * [A-Za-z0-9._:/@-]. */
int ark_name_valid(const char *s);

#endif /* ARK_CONFIG_H */
