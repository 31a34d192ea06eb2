/* Ark virtual keys: parsing, lookup and serialisation of the keys file.
 *
 * A keyring is the parsed form of the keys file managed by the ark-keys
 * CLI (see docs/keys.md). Each line of that file names one virtual key and
 * carries the SHA-256 of its secret plus its attributes (tenant, allowed
 * models, priority class, compliance tags, state, creation time, hint,
 * limits and budgets, and the hash of a rotated-out secret with its expiry);
 * "tenant:<name>" lines carry the limits of whole tenants. Secrets
 * themselves are never stored. mod_ark parses the file at
 * configuration time into a keyring allocated from a pool, then for every
 * request hashes the presented Bearer secret and looks it up
 * (ark_keys_lookup): a bucket index on the first digest bytes finds the
 * candidates, and each candidate is compared with CRYPTO_memcmp so the
 * time taken does not depend on how many digest bytes match.
 *
 * Thread safety: a keyring is immutable once ark_keys_parse() or
 * ark_keys_load() returns, so any number of threads and processes may call
 * the read-only functions on it concurrently without locking. The
 * mutating functions (ark_keys_add, ark_keys_set_enabled,
 * ark_keys_set_attrs, ark_keys_remove, ark_keys_rotate,
 * ark_keys_set_tenant) exist for the ark-keys CLI only;
 * mod_ark never calls them, and they must not be used on a ring that other
 * threads read.
 *
 * The priority and tags attributes use the routing types of ark_route.h
 * (ark_priority_t, ark_tag_t); tags are built by ark_tags_parse, so a
 * key's requirements and a channel's tags have one representation. This
 * header does not include ark_route.h: a caller that reads those fields
 * includes it.
 *
 * This file depends on APR, OpenSSL libcrypto, ark_route.c and ark_limit.c
 * (money) only (no httpd headers).
 */

#ifndef ARK_KEYS_H
#define ARK_KEYS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/** Length in bytes of a key digest (SHA-256). */
#define ARK_KEY_HASH_LEN 32

/** Maximum length of a key name or tenant. */
#define ARK_KEY_NAME_MAX 64

/** Maximum length of one model alias in a models= list. */
#define ARK_KEY_MODEL_MAX 256

/** Maximum length of the key or of the value of one tag in a tags= list. */
#define ARK_KEY_TAG_MAX 64

/** Most tags in one tags= list. The router checks every channel against
 * every requirement on each request (ark_tags_satisfy, quadratic in the
 * list), so the list is kept short. */
#define ARK_KEY_TAGS_MAX 32

/** Every secret made by ark_keys_secret_make() starts with this. */
#define ARK_KEY_SECRET_PREFIX "sk-ark-"
#define ARK_KEY_SECRET_PREFIX_LEN 7

/** Random bytes in a secret, and their unpadded base64url length. */
#define ARK_KEY_SECRET_BYTES 32
#define ARK_KEY_SECRET_B64_LEN 43

/** Total length of a secret: prefix + base64url (50). */
#define ARK_KEY_SECRET_LEN (ARK_KEY_SECRET_PREFIX_LEN + ARK_KEY_SECRET_B64_LEN)

/** Length of the hint= attribute: the last characters of the secret. */
#define ARK_KEY_HINT_LEN 4

/** Length of a created= timestamp, "2026-11-27T11:00:00Z". */
#define ARK_KEY_CREATED_LEN 20

/** ark_keys_load() refuses files larger than this (bytes). At about 200
 * bytes a line this is several hundred thousand keys. */
#define ARK_KEYS_FILE_MAX (64 * 1024 * 1024)

/** Limits of a key or a tenant (docs/limits.md). 0 means no limit.
 * Budgets are in nano-units of the currency (ark_limit.h). */
typedef struct ark_limits_t {
    apr_int64_t rpm;          /* requests per minute */
    apr_int64_t tpm;          /* tokens (prompt + completion) per minute */
    apr_int64_t concurrency;  /* requests in flight */
    apr_int64_t budget_day;   /* spend per UTC day, nano-units */
    apr_int64_t budget_month; /* spend per UTC month, nano-units */
} ark_limits_t;

/** A limit of one key towards one provider (rpm@openai=, tpm@openai=). */
typedef struct ark_provider_limit_t {
    const char *provider; /* an ArkProvider name; [A-Za-z0-9._-] */
    apr_int64_t rpm, tpm; /* 0: none */
} ark_provider_limit_t;

/** A tenant line ("tenant:<name> rpm=... budget_day=..."). */
typedef struct ark_tenant_t {
    const char *name;
    ark_limits_t limits;
    int line; /* line number, 0 when added by the CLI */
} ark_tenant_t;

/** Most provider limits on one key. */
#define ARK_KEY_PROVIDER_LIMITS_MAX 16

/** One virtual key. Every pointer is owned by the keyring's pool. */
typedef struct ark_key_t {
    const char *name;                     /* unique in the file */
    const char *tenant;                   /* the name when not given */
    unsigned char hash[ARK_KEY_HASH_LEN]; /* SHA-256 of the secret */
    apr_array_header_t *models; /* const char *; empty when all_models */
    int all_models;             /* models=* (the default) */
    int priority;               /* an ark_priority_t (ark_route.h);
                                 * ARK_PRIO_NORMAL by default. Mind that
                                 * 0 is ARK_PRIO_HIGH: start a key with
                                 * ark_key_init, not a memset */
    apr_array_header_t *tags;   /* ark_tag_t (ark_route.h): compliance
                                 * requirements, in file order; NULL when
                                 * none (readers treat empty the same) */
    int enabled;                /* 1 enabled, 0 revoked */
    const char *created;        /* may be NULL */
    const char *hint;           /* may be NULL */
    int line;                   /* line number in the file, for messages;
                                 * 0 for keys added by ark_keys_add */
    ark_limits_t limits;        /* rpm= tpm= concurrency= budget_day=
                                 * budget_month=; all 0 by default */
    apr_array_header_t *provider_limits; /* ark_provider_limit_t; NULL
                                          * when none */
    int has_previous; /* previous= set: a rotated-out secret */
    unsigned char previous_hash[ARK_KEY_HASH_LEN];
    apr_time_t previous_until; /* previous_until=: the old secret is
                                * accepted while now < this */
} ark_key_t;

/** Opaque set of keys. Pool-allocated; immutable after parsing. */
typedef struct ark_keyring_t ark_keyring_t;

/* ------------------------------------------------------------------ */
/* Reading: used by mod_ark and the CLI                                */
/* ------------------------------------------------------------------ */

/**
 * Parse keys file text into a keyring.
 *
 * @param pring  receives the keyring on success, NULL on failure
 * @param text   the file contents; need not be NUL-terminated
 * @param len    bytes in text
 * @param perr   receives a one-line message on failure ("line 7: ..."),
 *               NULL on success. The message never contains a secret, a
 *               hash or a whole line; it may quote a short (at most 32
 *               characters) attribute name or value, or a key name.
 * @param p      pool for the keyring, its keys and the message. The ring
 *               copies everything it keeps, so text may be freed after.
 *               On failure, partial allocations remain in p.
 * @return APR_SUCCESS; APR_EINVAL for a syntax error (see perr);
 *         APR_EGENERAL if OpenSSL cannot provide SHA-256.
 */
apr_status_t ark_keys_parse(ark_keyring_t **pring, const char *text,
                            apr_size_t len, const char **perr, apr_pool_t *p);

/**
 * Read and parse a keys file.
 *
 * @param pring  receives the keyring on success, NULL on failure
 * @param path   the file to read; must be a regular file of at most
 *               ARK_KEYS_FILE_MAX bytes
 * @param perr   receives a message naming the path on failure
 *               ("/etc/ark/keys: line 7: ..."), NULL on success
 * @param p      pool for the keyring and the message; the file contents
 *               are read into a subpool that is destroyed before return
 * @return APR_SUCCESS; the APR error of open/read (APR_ENOENT, APR_EACCES,
 *         ...); APR_EINVAL for a parse error, a file that is not a
 *         regular file or is too large; APR_EGENERAL as ark_keys_parse.
 */
apr_status_t ark_keys_load(ark_keyring_t **pring, const char *path,
                           const char **perr, apr_pool_t *p);

/**
 * Check that a keys file is private enough for httpd to use: not readable
 * or writable by others (mode & 0006) and not writable by its group
 * (mode & 0020). The hashes in it allow offline guessing of weak secrets
 * and anyone who can write it can mint keys.
 *
 * @param path  the keys file (symbolic links are followed)
 * @param perr  receives a message naming the path, its mode and the fix
 *              ("chmod 640 <path>") on failure, NULL on success
 * @param p     pool for the message
 * @return APR_SUCCESS; APR_EACCES if the mode is too open; the APR error
 *         of stat (the caller's ark_keys_load then reports it).
 */
apr_status_t ark_keys_check_mode(const char *path, const char **perr,
                                 apr_pool_t *p);

/**
 * Find the key whose secret is the given bytes.
 *
 * Hashes the secret with SHA-256, picks the bucket from the first digest
 * bytes and compares the full digest of every key in that bucket with
 * CRYPTO_memcmp (the whole bucket is always scanned). The time taken
 * depends on the bucket's size, which only reveals digest prefixes of
 * stored keys, not how close the presented secret is to any of them.
 *
 * @param ring    the keyring (read-only; thread-safe)
 * @param secret  the presented secret, e.g. the bytes after "Bearer "
 * @param len     its length
 * @return the key (owned by the ring), or NULL if no key matches or
 *         hashing failed. Revoked keys are returned: check key->enabled.
 */
const ark_key_t *ark_keys_lookup(const ark_keyring_t *ring, const char *secret,
                                 apr_size_t len);

/**
 * As ark_keys_lookup, but also matches a key's previous (rotated-out)
 * secret. *pprevious (pprevious may be NULL) receives 1 when the match was
 * on previous_hash, else 0; the caller then accepts the key only while
 * now < key->previous_until.
 * Previous hashes are in the same bucket index and compared the same
 * constant-time way.
 */
const ark_key_t *ark_keys_lookup_ex(const ark_keyring_t *ring,
                                    const char *secret, apr_size_t len,
                                    int *pprevious);

/**
 * Find a tenant line by name.
 *
 * @return the tenant (owned by the ring) or NULL when the file has no
 *         tenant:<name> line (the tenant then has no limits)
 */
const ark_tenant_t *ark_keys_tenant(const ark_keyring_t *ring,
                                    const char *name);

/** @return the number of tenant lines (0 for NULL). */
int ark_keys_tenant_count(const ark_keyring_t *ring);

/** The i-th tenant line in file order, or NULL when out of range. */
const ark_tenant_t *ark_keys_tenant_at(const ark_keyring_t *ring, int i);

/**
 * The limit of a key towards a provider, or NULL when it has none.
 */
const ark_provider_limit_t *ark_key_provider_limit(const ark_key_t *key,
                                                   const char *provider);

/**
 * Find a key by its digest; as ark_keys_lookup without the hashing.
 *
 * @param ring  the keyring (read-only; thread-safe)
 * @param hash  ARK_KEY_HASH_LEN bytes of SHA-256
 * @return the key (owned by the ring) or NULL
 */
const ark_key_t *ark_keys_lookup_hash(const ark_keyring_t *ring,
                                      const unsigned char *hash);

/**
 * Find a key by name (case-sensitive).
 *
 * @return the key (owned by the ring) or NULL
 */
const ark_key_t *ark_keys_find_name(const ark_keyring_t *ring,
                                    const char *name);

/**
 * Whether the key may use a model alias (exact, case-sensitive match).
 *
 * @return 1 if key->all_models or model is in key->models, else 0;
 *         0 when key or model is NULL. Does not look at key->enabled.
 */
int ark_key_allows_model(const ark_key_t *key, const char *model);

/** @return the number of keys in the ring (0 for NULL). */
int ark_keys_count(const ark_keyring_t *ring);

/**
 * The i-th key in file order.
 *
 * @return the key (owned by the ring), or NULL when i is out of range
 */
const ark_key_t *ark_keys_at(const ark_keyring_t *ring, int i);

/**
 * Serialise the ring to keys file text.
 *
 * Keys are written in ring order, one line each, attributes in the order
 * tenant, models, priority, tags, state, created, hint, rpm, tpm,
 * concurrency, budget_day, budget_month, provider limits (in the order of
 * key->provider_limits), previous, previous_until, omitting those equal to
 * their default; budgets with ark_money_format. Tenant lines keep their
 * place among the keys (new ones come last). Comment and blank lines read by
 * ark_keys_parse are kept in place (comments directly above a key or tenant
 * line belong to it and go when it is removed); lines end in "\n". If the
 * text would not start with a comment, a header comment describing the
 * format is put first. ark_keys_parse of the text gives the same ring.
 *
 * @param ptext  receives the NUL-terminated text, allocated from p
 * @param ring   the keyring
 * @param p      pool for the text
 * @return APR_SUCCESS, or APR_EINVAL if ring is NULL
 */
apr_status_t ark_keys_format(const char **ptext, const ark_keyring_t *ring,
                             apr_pool_t *p);

/* ------------------------------------------------------------------ */
/* Secrets, hashes and validation helpers                              */
/* ------------------------------------------------------------------ */

/**
 * SHA-256 of a secret.
 *
 * @param out     receives ARK_KEY_HASH_LEN bytes; all zero in the
 *                (allocation-failure only) case that OpenSSL fails
 * @param secret  the secret bytes
 * @param len     their length
 */
void ark_keys_hash(unsigned char out[ARK_KEY_HASH_LEN], const char *secret,
                   apr_size_t len);

/**
 * Make a new secret: ARK_KEY_SECRET_PREFIX followed by the unpadded
 * base64url encoding of ARK_KEY_SECRET_BYTES bytes from RAND_bytes.
 *
 * @param psecret  receives the NUL-terminated secret (ARK_KEY_SECRET_LEN
 *                 characters), allocated from p. The caller should
 *                 OPENSSL_cleanse it once it has been handed out.
 * @param p        pool for the secret
 * @return APR_SUCCESS, or APR_EGENERAL if the random generator fails
 */
apr_status_t ark_keys_secret_make(const char **psecret, apr_pool_t *p);

/**
 * Whether bytes have the shape of a secret from ark_keys_secret_make
 * (prefix, length, base64url alphabet). Says nothing about whether such
 * a key exists; useful for better messages only.
 *
 * @return 1 if well-formed, else 0
 */
int ark_keys_secret_wellformed(const char *secret, apr_size_t len);

/**
 * Whether a string is a valid key name (or tenant): 1 to
 * ARK_KEY_NAME_MAX characters of [A-Za-z0-9._@-].
 *
 * @return 1 if valid, 0 if not or NULL
 */
int ark_keys_name_valid(const char *name);

/**
 * Whether a string is a valid model alias: 1 to ARK_KEY_MODEL_MAX
 * characters of [A-Za-z0-9._:/@-].
 *
 * @return 1 if valid, 0 if not or NULL
 */
int ark_keys_model_valid(const char *model);

/**
 * Parse a models= value: "*" or a comma-separated list of model aliases.
 *
 * @param pmodels  receives an array of const char * (empty for "*"),
 *                 allocated from p with its strings
 * @param pall     receives 1 for "*", else 0
 * @param spec     the value, NUL-terminated
 * @param perr     receives a message on failure (without a line number)
 * @param p        pool for the array, strings and message
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t ark_keys_models_parse(apr_array_header_t **pmodels, int *pall,
                                   const char *spec, const char **perr,
                                   apr_pool_t *p);

/**
 * Parse a tags= value: comma-separated key=value compliance tags, e.g.
 * "region=eu,region=us,tier=official". Each item is split at its first
 * '='; key and value are 1 to ARK_KEY_TAG_MAX characters of
 * [A-Za-z0-9._:/-]; at most ARK_KEY_TAGS_MAX items, none empty, none
 * repeated. The array is built by ark_tags_parse (ark_route.h), after
 * checks whose messages never quote the value (a tag value may be
 * anything, even a pasted secret).
 *
 * @param ptags  receives an array of ark_tag_t, allocated from p with its
 *               strings; empty when spec is "" (no requirements)
 * @param spec   the value, NUL-terminated
 * @param perr   receives a message on failure (without a line number),
 *               such as "tag 2 is not key=value"
 * @param p      pool for the array, strings and message
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t ark_keys_tags_parse(apr_array_header_t **ptags, const char *spec,
                                 const char **perr, apr_pool_t *p);

/**
 * Format a time as a created= value, "YYYY-MM-DDTHH:MM:SSZ" in UTC.
 *
 * @param pstamp  receives the NUL-terminated stamp, allocated from p
 * @param t       the time
 * @param p       pool for the stamp
 * @return APR_SUCCESS, or the error of apr_time_exp_gmt
 */
apr_status_t ark_keys_timestamp_make(const char **pstamp, apr_time_t t,
                                     apr_pool_t *p);

/* ------------------------------------------------------------------ */
/* Editing: for the ark-keys CLI only; mod_ark never mutates a ring    */
/* ------------------------------------------------------------------ */

/**
 * Set *key to what a key line without attributes means: all models,
 * priority ARK_PRIO_NORMAL, no tags, enabled; every pointer NULL and the
 * hash zero. Use it before filling in a key for ark_keys_add.
 */
void ark_key_init(ark_key_t *key);

/**
 * Make an empty keyring (as parsing an empty file would).
 *
 * @param pring  receives the ring, allocated from p
 * @param p      pool for the ring; all later additions also go here
 * @return APR_SUCCESS, or APR_EGENERAL if OpenSSL lacks SHA-256
 */
apr_status_t ark_keys_make(ark_keyring_t **pring, apr_pool_t *p);

/**
 * Append a copy of a key to the ring, after validating it like the parser
 * does. key->tenant NULL means the name; key->models is ignored when
 * key->all_models is set, otherwise it must hold at least one valid alias.
 * key->priority must be an ark_priority_t; key->tags NULL or empty means
 * none, otherwise each tag is checked as ark_keys_tags_parse checks it.
 * key->limits are 0 (none) or within the file's bounds; provider limits
 * name valid, distinct providers (entries with rpm and tpm 0 are dropped).
 * With key->has_previous, previous_hash is kept too (previous_until cut to
 * whole seconds, as the file keeps it). key->line is ignored (the copy has
 * line 0). Not thread-safe.
 *
 * @param padded  receives the ring's copy (may be NULL if not wanted)
 * @param ring    the ring to change
 * @param key     the key to copy; not kept
 * @param perr    receives a message on failure, allocated from the ring's
 *                pool
 * @return APR_SUCCESS; APR_EINVAL for an invalid field; APR_EEXIST if the
 *         name, the hash or the previous hash is already in the ring
 *         (as a current or a previous hash)
 */
apr_status_t ark_keys_add(const ark_key_t **padded, ark_keyring_t *ring,
                          const ark_key_t *key, const char **perr);

/**
 * Enable or revoke the named key. Not thread-safe.
 *
 * @return APR_SUCCESS, or APR_ENOENT if no key has that name
 */
apr_status_t ark_keys_set_enabled(ark_keyring_t *ring, const char *name,
                                  int enabled);

/** Fields ark_keys_set_attrs changes; OR them together. */
#define ARK_KEY_SET_TENANT 0x01u   /* tenant (NULL: back to the name) */
#define ARK_KEY_SET_MODELS 0x02u   /* all_models and models */
#define ARK_KEY_SET_PRIORITY 0x04u /* priority */
#define ARK_KEY_SET_TAGS 0x08u     /* tags (NULL or empty: remove all) */
#define ARK_KEY_SET_LIMITS 0x10u   /* limits and provider_limits */

/**
 * Change attributes of the named key. The fields of attrs selected by
 * which are validated as ark_keys_add validates them and, only if all are
 * valid, copied into the ring's key; the others (and attrs->name, hash,
 * state, created, hint, line) are ignored. Not thread-safe.
 *
 * @param pchanged  receives 1 if the key differs afterwards, 0 if every
 *                  selected field already had its new value (may be NULL)
 * @param ring      the ring to change
 * @param name      the key to change
 * @param attrs     the new values; not kept
 * @param which     ARK_KEY_SET_* bits; 0 changes nothing
 * @param perr      receives a message on failure, allocated from the
 *                  ring's pool
 * @return APR_SUCCESS; APR_ENOENT if no key has that name; APR_EINVAL for
 *         an invalid field or NULL argument (the key is left unchanged)
 */
apr_status_t ark_keys_set_attrs(int *pchanged, ark_keyring_t *ring,
                                const char *name, const ark_key_t *attrs,
                                unsigned int which, const char **perr);

/**
 * Remove the named key, and the comment lines directly above it, from the
 * ring. Pointers to the removed key stay valid (pool memory) but it is no
 * longer found. Not thread-safe.
 *
 * @return APR_SUCCESS, or APR_ENOENT if no key has that name
 */
apr_status_t ark_keys_remove(ark_keyring_t *ring, const char *name);

/**
 * Rotate the named key: its current hash becomes previous_hash, valid
 * until previous_until (cut to whole seconds, as the file keeps it);
 * new_hash becomes the hash and new_hint (NULL: none) the hint. A key
 * already holding a previous secret loses it. Not thread-safe.
 *
 * @param perr  receives a message on failure, allocated from the ring's
 *              pool
 * @return APR_SUCCESS; APR_ENOENT if no key has that name; APR_EEXIST if
 *         new_hash is already used by a key (current or previous);
 *         APR_EINVAL for an invalid hint or a NULL argument
 */
apr_status_t ark_keys_rotate(ark_keyring_t *ring, const char *name,
                             const unsigned char *new_hash,
                             const char *new_hint, apr_time_t previous_until,
                             const char **perr);

/**
 * Add or change the tenant line of a tenant (limits replaced whole; a new
 * line goes after the last line). A tenant whose limits are all 0 is
 * removed from the file, with the comment lines directly above it. Not
 * thread-safe.
 *
 * @param perr  receives a message on failure (a constant string)
 * @return APR_SUCCESS; APR_EINVAL for an invalid name or a limit out of
 *         bounds (see perr)
 */
apr_status_t ark_keys_set_tenant(ark_keyring_t *ring, const char *name,
                                 const ark_limits_t *limits, const char **perr);

#endif /* ARK_KEYS_H */
