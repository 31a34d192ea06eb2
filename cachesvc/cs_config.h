/* ark-cached: configuration, from a file and from the command line.
 *
 * The file has redis.conf's shape: one "key value" per line, "#" starts a
 * comment line, blank lines are ignored. The value is the rest of the
 * line with surrounding blanks removed, or a "double-quoted" string
 * (escapes \" \\ \n \r \t) or a 'single-quoted' one (taken literally)
 * when it needs leading or trailing blanks or must be empty. Keys are
 * case-insensitive and '-' equals '_' (so --max-bulk-len works). A key
 * may appear once per file; "--key value" (or "--key=value") on the
 * command line replaces the file's value.
 *
 * The parser does not know the keys. It keeps a table of (key, value,
 * where) entries; every part of the daemon reads its own keys through
 * the typed getters below, which validate the value and name the file and
 * line in their error sentence. The getters also record that the key was
 * read: once everything has started, cs_config_check_unused() reports
 * keys that nobody read (typos such as "prot 7480"), with a suggestion.
 *
 * The network core's own keys are read and validated in one go by
 * cs_config_core(); the cache engine reads its keys in cs_engine_start().
 *
 * Ownership: strings returned by the getters are borrowed from the
 * configuration and live until cs_config_free().
 *
 * Thread safety: none. Reading a key records it (the only change a
 * getter makes, which is why they accept a const configuration), so all
 * reading happens on the main thread during start-up and reload.
 */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stddef.h>

#include "cs_log.h"

/* Longest line in the configuration file. */
#define CS_CONFIG_LINE_MAX 4096

/* Most entries in one configuration: far above the few dozen keys that
 * exist, low enough that a wrong file (a binary, a log) stops early. */
#define CS_CONFIG_ENTRIES_MAX 1024

/* Suggested size of err buffers passed to this API. */
#define CS_CONFIG_ERR_MAX 512

typedef struct cs_config cs_config_t;

/* Creates an empty configuration. */
int cs_config_create(cs_config_t **pcfg);
void cs_config_free(cs_config_t *cfg);

/* Reads a configuration file into cfg. Returns CS_OK, or CS_ERR with err
 * naming file and line (unreadable file, line too long, missing value,
 * bad quoting, duplicate key, too many entries). */
int cs_config_load_file(cs_config_t *cfg, const char *path, char *err,
                        size_t errlen);

/* Sets key to value from the command line, replacing any earlier value.
 * Returns CS_OK, or CS_ERR with err set (malformed key). */
int cs_config_set_override(cs_config_t *cfg, const char *key, const char *value,
                           char *err, size_t errlen);

/* The file given to cs_config_load_file, or NULL. */
const char *cs_config_file(const cs_config_t *cfg);

/* 1 if key has a value (does not count as reading it). */
int cs_config_has(const cs_config_t *cfg, const char *key);

/* Where key got its value: "file:line", "command line (--key)", or
 * "default" when absent. Borrowed. */
const char *cs_config_where(const cs_config_t *cfg, const char *key);

/* Typed getters. Each returns CS_OK with *out set to the value, or to def
 * when the key is absent; or CS_ERR with err holding a sentence such as
 *   "ark-cached.conf:12: port: expected an integer from 0 to 65535,
 *    got 'x'".
 * Bounds are inclusive. */
int cs_config_get_str(const cs_config_t *cfg, const char *key, const char *def,
                      const char **out, char *err, size_t errlen);
int cs_config_get_long(const cs_config_t *cfg, const char *key, long def,
                       long min, long max, long *out, char *err, size_t errlen);
int cs_config_get_double(const cs_config_t *cfg, const char *key, double def,
                         double min, double max, double *out, char *err,
                         size_t errlen);
/* Sizes: a number of bytes with an optional unit, as in redis.conf:
 * k = 1000, kb = 1024, m = 1000000, mb = 1024 kb, g, gb (any case). */
int cs_config_get_size(const cs_config_t *cfg, const char *key, size_t def,
                       size_t min, size_t max, size_t *out, char *err,
                       size_t errlen);
/* yes or no. */
int cs_config_get_bool(const cs_config_t *cfg, const char *key, int def,
                       int *out, char *err, size_t errlen);
/* One of names (NULL-terminated list, matched case-insensitively);
 * *out receives its index. */
int cs_config_get_enum(const cs_config_t *cfg, const char *key,
                       const char *const *names, int def, int *out, char *err,
                       size_t errlen);

/* Formats a validation failure for key the way the getters do
 * ("where: key: <message>") and returns CS_ERR; for checks the getters
 * cannot express (a path that must exist, two keys that conflict). */
int cs_config_error(const cs_config_t *cfg, const char *key, char *err,
                    size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* CS_ERR with err naming the first key nobody read ("file:line: unknown
 * key 'prot' (did you mean 'port'?)", "and 2 more"), else CS_OK. */
int cs_config_check_unused(const cs_config_t *cfg, char *err, size_t errlen);

/* Makes dst treat every key read from src as known, for a configuration
 * re-read on SIGHUP that the engine does not read again. */
void cs_config_inherit_known(cs_config_t *dst, const cs_config_t *src);

/* Entry i (0-based, file order) for iteration; CS_ERR past the end. */
int cs_config_entry(const cs_config_t *cfg, int i, const char **key,
                    const char **value);

/* ---- The network core's own keys ---------------------------------- */

/* Longest password (requirepass or the first line of requirepass_file). */
#define CS_PASS_MAX 512

/* Most I/O threads; more than cores only adds switching. */
#define CS_THREADS_MAX 256

/* Most clients: each costs a descriptor and a few hundred bytes idle. */
#define CS_MAXCLIENTS_MAX 1000000

/* Defaults (see docs/ark-cached.md). */
#define CS_DEFAULT_BIND "127.0.0.1"
#define CS_DEFAULT_PORT 7480
#define CS_DEFAULT_UNIXSOCKETPERM 0700
#define CS_DEFAULT_MAXCLIENTS 10000
/* 16 MiB holds a command with a max_bulk_len payload and its text. */
#define CS_DEFAULT_MAX_QUERY_BUFFER ((size_t)16 * 1024 * 1024)
/* 64 MiB: a client may pipeline a few big hits before reading. */
#define CS_DEFAULT_MAX_OUTPUT_BUFFER ((size_t)64 * 1024 * 1024)

typedef struct cs_core_conf {
    const char *bind;        /* numeric IPv4/IPv6 address */
    int port;                /* 0: no TCP listener */
    const char *unixsocket;  /* NULL: no Unix socket */
    unsigned unixsocketperm; /* mode bits of the socket file */
    int threads;             /* I/O threads */
    int maxclients;
    long timeout; /* idle seconds before closing, 0: never */
    char requirepass[CS_PASS_MAX + 1]; /* "": no AUTH needed */
    size_t max_bulk_len;               /* longest argument */
    size_t max_query_buffer;           /* unparsed input per client */
    size_t max_output_buffer;          /* unsent replies per client */
    int metrics_port;                  /* 0: no Prometheus endpoint */
    int daemonize;
    const char *pidfile; /* NULL: none */
    const char *logfile; /* NULL: stderr */
    cs_log_level_t loglevel;
} cs_core_conf_t;

/* Reads and validates every core key (and requirepass_file). Strings
 * are borrowed from cfg. Returns CS_OK or CS_ERR with err set. */
int cs_config_core(const cs_config_t *cfg, cs_core_conf_t *core, char *err,
                   size_t errlen);

/* Overwrites the password in core (call when done with it). */
void cs_config_core_wipe(cs_core_conf_t *core);

/* The default for threads: the CPUs this process may run on. */
int cs_config_default_threads(void);

#endif /* CS_CONFIG_H */
