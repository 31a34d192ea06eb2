/* Ark virtual keys: the keys file parser, the digest index and the writer.
 *
 * ark_keys_parse() walks the file text line by line. Comment and blank
 * lines are kept as text attached to the following key (so the CLI can
 * rewrite the file without losing an admin's notes); each key line is
 * split into whitespace-separated tokens, validated, copied into the
 * ring's pool and entered into two indexes: an apr_hash by name (for
 * duplicate detection and the CLI) and a chained hash table on the first
 * four bytes of the SHA-256 digest (for ark_keys_lookup). The digest table
 * is a power-of-two array of bucket heads; it is grown whenever the key
 * count exceeds the bucket count, so chains stay short on average.
 *
 * Example: with 10 000 keys the table has 16 384 buckets; a lookup hashes
 * the secret, takes digest bytes 0-3 as a big-endian number, masks it with
 * 16383, and compares the full 32-byte digest of each key in that chain
 * (usually zero or one) with CRYPTO_memcmp, scanning the whole chain even
 * after a match.
 *
 * Two attributes feed the router (ark_route.h): priority= is one of its
 * priority classes and tags= a list of compliance requirements, checked
 * here item by item (so that messages can name a bad tag by its number
 * without quoting it) and then built by ark_tags_parse.
 *
 * ark_keys_format() writes the ring back out; the add/set/remove functions
 * are used only by the ark-keys CLI. Nothing here includes httpd headers.
 */

#include <stdarg.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ark_keys.h"
#include "ark_route.h"

/* Initial (and minimum) number of digest buckets; a power of two. */
#define KEYS_BUCKETS_MIN 16

/* Longest user-supplied token an error message will quote. Shorter than
 * any secret (50) or hex digest (64), so neither can be echoed whole. */
#define KEYS_ECHO_MAX 32

#define KEYS_HASH_PREFIX "sha256:"
#define KEYS_HASH_PREFIX_LEN 7
#define KEYS_HASH_HEX_LEN (2 * ARK_KEY_HASH_LEN)

#define KEYS_NAME_RULE "1-64 characters of A-Z a-z 0-9 . _ @ -"
#define KEYS_MODEL_RULE "A-Z a-z 0-9 . _ : / @ -"
#define KEYS_TAG_RULE "A-Z a-z 0-9 . _ : / -"
#define KEYS_PRIORITY_LIST "high, normal or low"
#define KEYS_ATTR_LIST "tenant, models, priority, tags, state, created, hint"

static const char keys_header[] =
    "# Ark virtual keys. Edit with ark-keys; see docs/keys.md.\n"
    "# <name> sha256:<hex SHA-256 of the secret> [tenant=<tenant>]\n"
    "#   [models=<alias>,<alias>...|*] [priority=high|normal|low]\n"
    "#   [tags=<key>=<value>,<key>=<value>...] [state=enabled|revoked]\n"
    "#   [created=<YYYY-MM-DDTHH:MM:SSZ>] [hint=<last 4 characters>]\n"
    "# Defaults: tenant=<name> models=* priority=normal state=enabled,\n"
    "# no tags. httpd reads this file on start and graceful reload.\n"
    "# Secrets are never stored here, only their hashes.\n"
    "\n";

typedef enum {
    KEYS_ATTR_TENANT,
    KEYS_ATTR_MODELS,
    KEYS_ATTR_PRIORITY,
    KEYS_ATTR_TAGS,
    KEYS_ATTR_STATE,
    KEYS_ATTR_CREATED,
    KEYS_ATTR_HINT,
    KEYS_ATTR_COUNT
} keys_attr_e;

static const char *const keys_attr_names[KEYS_ATTR_COUNT] = {
    "tenant", "models", "priority", "tags", "state", "created", "hint"};

typedef struct keys_entry_t keys_entry_t;

/* A key plus what only this file needs. key must stay the first member:
 * the public functions hand out &entry->key and get it back. */
struct keys_entry_t {
    ark_key_t key;
    keys_entry_t *next; /* digest bucket chain */
    const char *lead;   /* free comment/blank lines above; never NULL */
    const char *doc;    /* comment lines directly above; never NULL */
};

struct ark_keyring_t {
    apr_pool_t *pool;
    apr_array_header_t *entries; /* keys_entry_t *, file order */
    apr_hash_t *by_name;         /* name -> keys_entry_t * */
    keys_entry_t **buckets;      /* mask + 1 chain heads */
    apr_uint32_t mask;
    const char *trailer; /* lines after the last key; not NULL */
    EVP_MD *md;          /* fetched SHA-256, freed with pool */
};

/* ------------------------------------------------------------------ */
/* Character classes (ASCII only, independent of the locale)          */
/* ------------------------------------------------------------------ */

static int keys_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

static int keys_is_name_char(char c)
{
    return keys_is_alnum(c) || c == '.' || c == '_' || c == '@' || c == '-';
}

static int keys_is_model_char(char c)
{
    return keys_is_name_char(c) || c == ':' || c == '/';
}

/* The characters ark_tags_parse accepts in a tag key or value. */
static int keys_is_tag_char(char c)
{
    return keys_is_alnum(c) || c == '.' || c == '_' || c == '-' || c == ':' ||
           c == '/';
}

static int keys_is_b64url_char(char c)
{
    return keys_is_alnum(c) || c == '-' || c == '_';
}

static int keys_is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int keys_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int keys_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Field validators on (pointer, length)                              */
/* ------------------------------------------------------------------ */

static int keys_name_validn(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || n > ARK_KEY_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!keys_is_name_char(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int keys_model_validn(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || n > ARK_KEY_MODEL_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!keys_is_model_char(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int keys_hint_validn(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n != ARK_KEY_HINT_LEN) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!keys_is_b64url_char(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int keys_tag_partn(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (!keys_is_tag_char(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Checks tag number idx (from 1) of a list, split into key and value.
 * Returns NULL if it is valid, else a message naming the tag by its
 * number only: a tag may be anything, even a pasted secret. */
static const char *keys_tag_checkn(const char *k, apr_size_t klen,
                                   const char *v, apr_size_t vlen, int idx,
                                   apr_pool_t *p)
{
    if (klen == 0) {
        return apr_psprintf(p, "tag %d has an empty key", idx);
    }
    if (vlen == 0) {
        return apr_psprintf(p, "tag %d has an empty value", idx);
    }
    if (klen > ARK_KEY_TAG_MAX || vlen > ARK_KEY_TAG_MAX) {
        return apr_psprintf(p,
                            "tag %d has a key or value longer than %d "
                            "characters",
                            idx, ARK_KEY_TAG_MAX);
    }
    if (!keys_tag_partn(k, klen) || !keys_tag_partn(v, vlen)) {
        return apr_psprintf(p, "tag %d has a character outside " KEYS_TAG_RULE,
                            idx);
    }
    return NULL;
}

/* NULL, or a message if two tags of the list are the same pair. */
static const char *keys_tags_dups(const apr_array_header_t *tags, apr_pool_t *p)
{
    const ark_tag_t *a, *b;
    int i, j;

    for (i = 1; i < tags->nelts; i++) {
        a = &APR_ARRAY_IDX(tags, i, ark_tag_t);
        for (j = 0; j < i; j++) {
            b = &APR_ARRAY_IDX(tags, j, ark_tag_t);
            if (!strcmp(a->key, b->key) && !strcmp(a->value, b->value)) {
                return apr_psprintf(p, "tag %d repeats tag %d", i + 1, j + 1);
            }
        }
    }
    return NULL;
}

/* Checks a caller's ark_tag_t array (NULL and empty are valid) like
 * ark_keys_tags_parse checks a tags= value. NULL if valid. */
static const char *keys_tags_check(const apr_array_header_t *tags,
                                   apr_pool_t *p)
{
    const ark_tag_t *t;
    const char *msg;
    int i;

    if (!tags) {
        return NULL;
    }
    if (tags->nelts > ARK_KEY_TAGS_MAX) {
        return apr_psprintf(p, "more than %d tags", ARK_KEY_TAGS_MAX);
    }
    for (i = 0; i < tags->nelts; i++) {
        t = &APR_ARRAY_IDX(tags, i, ark_tag_t);
        msg = keys_tag_checkn(t->key ? t->key : "", t->key ? strlen(t->key) : 0,
                              t->value ? t->value : "",
                              t->value ? strlen(t->value) : 0, i + 1, p);
        if (msg) {
            return msg;
        }
    }
    return keys_tags_dups(tags, p);
}

static int keys_digits(const char *s, int n)
{
    int i, v = 0;

    for (i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DDTHH:MM:SSZ" with a real calendar date. */
static int keys_created_validn(const char *s, apr_size_t n)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    static const int mdays[12] = {31, 29, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    int year, mon, day;
    apr_size_t i;

    if (n != ARK_KEY_CREATED_LEN) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (shape[i] == 'd' ? !keys_is_digit(s[i]) : s[i] != shape[i]) {
            return 0;
        }
    }
    year = keys_digits(s, 4);
    mon = keys_digits(s + 5, 2);
    day = keys_digits(s + 8, 2);
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1]) {
        return 0;
    }
    if (mon == 2 && day == 29 &&
        !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))) {
        return 0;
    }
    return keys_digits(s + 11, 2) <= 23 && keys_digits(s + 14, 2) <= 59 &&
           keys_digits(s + 17, 2) <= 60;
}

/* A copy of a short user token that is safe to quote in a message, or
 * NULL if it is long or contains characters we would rather not repeat. */
static const char *keys_echo(const char *s, apr_size_t n, apr_pool_t *p)
{
    apr_size_t i;

    if (n == 0 || n > KEYS_ECHO_MAX) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (!keys_is_model_char(s[i])) {
            return NULL;
        }
    }
    return apr_pstrmemdup(p, s, n);
}

/* ------------------------------------------------------------------ */
/* Hashing and the digest index                                       */
/* ------------------------------------------------------------------ */

static int keys_digest(const EVP_MD *md, unsigned char *out, const char *data,
                       apr_size_t len)
{
    unsigned int n = 0;

    if (EVP_Digest(data, len, out, &n, md, NULL) != 1 ||
        n != ARK_KEY_HASH_LEN) {
        return 0;
    }
    return 1;
}

static apr_uint32_t keys_bucket_of(const unsigned char *hash)
{
    return ((apr_uint32_t)hash[0] << 24) | ((apr_uint32_t)hash[1] << 16) |
           ((apr_uint32_t)hash[2] << 8) | (apr_uint32_t)hash[3];
}

static void keys_index_insert(ark_keyring_t *ring, keys_entry_t *e)
{
    keys_entry_t **head;

    head = &ring->buckets[keys_bucket_of(e->key.hash) & ring->mask];
    e->next = *head;
    *head = e;
}

/* Keep at least one bucket per key; called after appending to entries. */
static void keys_index_fit(ark_keyring_t *ring)
{
    apr_size_t nb = (apr_size_t)ring->mask + 1;
    apr_size_t want = nb;
    int i;

    while (want < (apr_size_t)ring->entries->nelts) {
        want *= 2;
    }
    if (want == nb) {
        return;
    }
    ring->buckets = apr_pcalloc(ring->pool, want * sizeof(*ring->buckets));
    ring->mask = (apr_uint32_t)(want - 1);
    for (i = 0; i < ring->entries->nelts; i++) {
        keys_index_insert(ring,
                          APR_ARRAY_IDX(ring->entries, i, keys_entry_t *));
    }
}

static void keys_index_unlink(ark_keyring_t *ring, keys_entry_t *e)
{
    keys_entry_t **pp;

    pp = &ring->buckets[keys_bucket_of(e->key.hash) & ring->mask];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            e->next = NULL;
            return;
        }
    }
}

static apr_status_t keys_md_cleanup(void *data)
{
    EVP_MD_free(data);
    return APR_SUCCESS;
}

apr_status_t ark_keys_make(ark_keyring_t **pring, apr_pool_t *p)
{
    ark_keyring_t *ring;

    *pring = NULL;
    ring = apr_pcalloc(p, sizeof(*ring));
    ring->pool = p;
    ring->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!ring->md) {
        return APR_EGENERAL;
    }
    apr_pool_cleanup_register(p, ring->md, keys_md_cleanup,
                              apr_pool_cleanup_null);
    ring->entries = apr_array_make(p, 16, sizeof(keys_entry_t *));
    ring->by_name = apr_hash_make(p);
    ring->buckets = apr_pcalloc(p, KEYS_BUCKETS_MIN * sizeof(*ring->buckets));
    ring->mask = KEYS_BUCKETS_MIN - 1;
    ring->trailer = "";
    *pring = ring;
    return APR_SUCCESS;
}

/* Enter a fully built entry into the ring. The caller has checked that
 * its name and hash are not present yet. */
static void keys_append(ark_keyring_t *ring, keys_entry_t *e)
{
    APR_ARRAY_PUSH(ring->entries, keys_entry_t *) = e;
    apr_hash_set(ring->by_name, e->key.name, APR_HASH_KEY_STRING, e);
    keys_index_insert(ring, e);
    keys_index_fit(ring);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                            */
/* ------------------------------------------------------------------ */

apr_status_t ark_keys_models_parse(apr_array_header_t **pmodels, int *pall,
                                   const char *spec, const char **perr,
                                   apr_pool_t *p)
{
    apr_array_header_t *models;
    const char *s, *comma;
    apr_size_t n;
    int idx = 0;

    *pmodels = NULL;
    *pall = 0;
    *perr = NULL;
    if (!spec || !*spec) {
        *perr = "empty models list (use '*' for all models)";
        return APR_EINVAL;
    }
    models = apr_array_make(p, 4, sizeof(const char *));
    if (!strcmp(spec, "*")) {
        *pmodels = models;
        *pall = 1;
        return APR_SUCCESS;
    }
    for (s = spec;; s = comma + 1) {
        comma = strchr(s, ',');
        n = comma ? (apr_size_t)(comma - s) : strlen(s);
        idx++;
        if (n == 1 && *s == '*') {
            *perr = "'*' cannot be combined with model aliases";
            return APR_EINVAL;
        }
        if (n == 0) {
            *perr = apr_psprintf(p, "model alias %d in the list is empty", idx);
            return APR_EINVAL;
        }
        if (n > ARK_KEY_MODEL_MAX) {
            *perr =
                apr_psprintf(p, "model alias %d is longer than %d characters",
                             idx, ARK_KEY_MODEL_MAX);
            return APR_EINVAL;
        }
        if (!keys_model_validn(s, n)) {
            *perr = apr_psprintf(p,
                                 "model alias %d has a character "
                                 "outside " KEYS_MODEL_RULE,
                                 idx);
            return APR_EINVAL;
        }
        APR_ARRAY_PUSH(models, const char *) = apr_pstrmemdup(p, s, n);
        if (!comma) {
            break;
        }
    }
    *pmodels = models;
    return APR_SUCCESS;
}

apr_status_t ark_keys_tags_parse(apr_array_header_t **ptags, const char *spec,
                                 const char **perr, apr_pool_t *p)
{
    apr_array_header_t *tags;
    const char *s, *comma, *eq, *msg;
    apr_size_t n, klen;
    int idx = 0;

    *ptags = NULL;
    *perr = NULL;
    if (!spec) {
        *perr = "no tags list";
        return APR_EINVAL;
    }
    if (!*spec) {
        *ptags = apr_array_make(p, 1, sizeof(ark_tag_t));
        return APR_SUCCESS;
    }
    /* ark_tags_parse skips empty items and quotes bad ones whole, so
     * every item is checked here first. */
    for (s = spec;; s = comma + 1) {
        comma = strchr(s, ',');
        n = comma ? (apr_size_t)(comma - s) : strlen(s);
        if (++idx > ARK_KEY_TAGS_MAX) {
            *perr = apr_psprintf(p, "more than %d tags", ARK_KEY_TAGS_MAX);
            return APR_EINVAL;
        }
        if (n == 0) {
            *perr = apr_psprintf(p, "tag %d in the list is empty", idx);
            return APR_EINVAL;
        }
        eq = memchr(s, '=', n);
        if (!eq) {
            *perr = apr_psprintf(p, "tag %d is not key=value", idx);
            return APR_EINVAL;
        }
        klen = (apr_size_t)(eq - s);
        msg = keys_tag_checkn(s, klen, eq + 1, n - klen - 1, idx, p);
        if (msg) {
            *perr = msg;
            return APR_EINVAL;
        }
        if (!comma) {
            break;
        }
    }
    if (ark_tags_parse(&tags, spec, p) != NULL || tags->nelts != idx) {
        /* Only if the two parsers disagree; its message may quote. */
        *perr = "the router's tag parser refused the list";
        return APR_EINVAL;
    }
    msg = keys_tags_dups(tags, p);
    if (msg) {
        *perr = msg;
        return APR_EINVAL;
    }
    *ptags = tags;
    return APR_SUCCESS;
}

/* Next whitespace-separated token of line[*ppos..len). */
static int keys_token(const char *line, apr_size_t len, apr_size_t *ppos,
                      const char **ptok, apr_size_t *ptoklen)
{
    apr_size_t i = *ppos, start;

    while (i < len && keys_is_space(line[i])) {
        i++;
    }
    if (i == len) {
        *ppos = i;
        return 0;
    }
    start = i;
    while (i < len && !keys_is_space(line[i])) {
        i++;
    }
    *ptok = line + start;
    *ptoklen = i - start;
    *ppos = i;
    return 1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static apr_status_t
keys_fail(const char **perr, apr_pool_t *p, int lineno, const char *fmt, ...)
{
    va_list ap;
    const char *msg;

    va_start(ap, fmt);
    msg = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    *perr = apr_psprintf(p, "line %d: %s", lineno, msg);
    return APR_EINVAL;
}

static apr_status_t keys_parse_hash(unsigned char *out, const char *tok,
                                    apr_size_t n, int lineno, const char **perr,
                                    apr_pool_t *p)
{
    apr_size_t i;
    int hi, lo;

    if (n < KEYS_HASH_PREFIX_LEN ||
        memcmp(tok, KEYS_HASH_PREFIX, KEYS_HASH_PREFIX_LEN)) {
        return keys_fail(perr, p, lineno,
                         "expected 'sha256:' and %d "
                         "lowercase hex digits after the key name",
                         KEYS_HASH_HEX_LEN);
    }
    tok += KEYS_HASH_PREFIX_LEN;
    n -= KEYS_HASH_PREFIX_LEN;
    if (n != KEYS_HASH_HEX_LEN) {
        return keys_fail(perr, p, lineno,
                         "hash has %" APR_SIZE_T_FMT " hex digits, expected %d",
                         n, KEYS_HASH_HEX_LEN);
    }
    for (i = 0; i < ARK_KEY_HASH_LEN; i++) {
        hi = keys_hex_value(tok[2 * i]);
        lo = keys_hex_value(tok[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return keys_fail(perr, p, lineno,
                             "hash has a character that "
                             "is not a lowercase hex digit");
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return APR_SUCCESS;
}

static apr_status_t keys_parse_attr(keys_entry_t *e, unsigned *seen,
                                    const char *tok, apr_size_t n, int lineno,
                                    const char **perr, apr_pool_t *p)
{
    const char *eq, *val, *echo, *msg;
    apr_size_t klen, vlen;
    int a, prio;

    /* The first '=' ends the name: "tags=region=eu" is tags. */
    eq = memchr(tok, '=', n);
    if (!eq) {
        return keys_fail(perr, p, lineno,
                         "expected attribute=value after "
                         "the hash, found a word without '='");
    }
    klen = (apr_size_t)(eq - tok);
    val = eq + 1;
    vlen = n - klen - 1;
    for (a = 0; a < KEYS_ATTR_COUNT; a++) {
        if (strlen(keys_attr_names[a]) == klen &&
            !memcmp(keys_attr_names[a], tok, klen)) {
            break;
        }
    }
    if (a == KEYS_ATTR_COUNT) {
        echo = keys_echo(tok, klen, p);
        return keys_fail(perr, p, lineno,
                         "unknown attribute%s%s%s "
                         "(expected " KEYS_ATTR_LIST ")",
                         echo ? " '" : "", echo ? echo : "", echo ? "'" : "");
    }
    if (*seen & (1u << a)) {
        return keys_fail(perr, p, lineno, "attribute '%s' given twice",
                         keys_attr_names[a]);
    }
    *seen |= 1u << a;
    if (vlen == 0) {
        return keys_fail(perr, p, lineno, "attribute '%s' has an empty value",
                         keys_attr_names[a]);
    }

    switch (a) {
    case KEYS_ATTR_TENANT:
        if (!keys_name_validn(val, vlen)) {
            return keys_fail(perr, p, lineno,
                             "invalid tenant (expected " KEYS_NAME_RULE ")");
        }
        e->key.tenant = apr_pstrmemdup(p, val, vlen);
        break;
    case KEYS_ATTR_MODELS:
        if (ark_keys_models_parse(&e->key.models, &e->key.all_models,
                                  apr_pstrmemdup(p, val, vlen), &msg,
                                  p) != APR_SUCCESS) {
            return keys_fail(perr, p, lineno, "models: %s", msg);
        }
        break;
    case KEYS_ATTR_PRIORITY:
        prio = ark_priority_parse(apr_pstrmemdup(p, val, vlen));
        if (prio < 0) {
            echo = keys_echo(val, vlen, p);
            return keys_fail(perr, p, lineno,
                             "invalid priority%s%s%s "
                             "(expected " KEYS_PRIORITY_LIST ")",
                             echo ? " '" : "", echo ? echo : "",
                             echo ? "'" : "");
        }
        e->key.priority = prio;
        break;
    case KEYS_ATTR_TAGS:
        if (ark_keys_tags_parse(&e->key.tags, apr_pstrmemdup(p, val, vlen),
                                &msg, p) != APR_SUCCESS) {
            return keys_fail(perr, p, lineno, "tags: %s", msg);
        }
        break;
    case KEYS_ATTR_STATE:
        if (vlen == 7 && !memcmp(val, "enabled", 7)) {
            e->key.enabled = 1;
        }
        else if (vlen == 7 && !memcmp(val, "revoked", 7)) {
            e->key.enabled = 0;
        }
        else {
            echo = keys_echo(val, vlen, p);
            return keys_fail(perr, p, lineno,
                             "invalid state%s%s%s "
                             "(expected enabled or revoked)",
                             echo ? " '" : "", echo ? echo : "",
                             echo ? "'" : "");
        }
        break;
    case KEYS_ATTR_CREATED:
        if (!keys_created_validn(val, vlen)) {
            return keys_fail(perr, p, lineno,
                             "invalid created time "
                             "(expected UTC like 2026-11-27T11:00:00Z)");
        }
        e->key.created = apr_pstrmemdup(p, val, vlen);
        break;
    case KEYS_ATTR_HINT:
        if (!keys_hint_validn(val, vlen)) {
            return keys_fail(perr, p, lineno,
                             "invalid hint (expected the "
                             "last %d characters of the secret: A-Z a-z "
                             "0-9 - _)",
                             ARK_KEY_HINT_LEN);
        }
        e->key.hint = apr_pstrmemdup(p, val, vlen);
        break;
    }
    return APR_SUCCESS;
}

static apr_status_t keys_parse_key(ark_keyring_t *ring, const char *line,
                                   apr_size_t len, int lineno,
                                   keys_entry_t **pe, const char **perr,
                                   apr_pool_t *p)
{
    keys_entry_t *e, *other;
    const char *tok = NULL;
    apr_size_t n = 0, pos = 0;
    unsigned seen = 0;
    apr_status_t rv;

    e = apr_pcalloc(p, sizeof(*e));
    e->key.line = lineno;
    e->key.enabled = 1;
    e->key.all_models = 1;
    e->key.priority = ARK_PRIO_NORMAL;

    if (!keys_token(line, len, &pos, &tok, &n) || !keys_name_validn(tok, n)) {
        return keys_fail(perr, p, lineno,
                         "invalid key name (expected " KEYS_NAME_RULE ")");
    }
    e->key.name = apr_pstrmemdup(p, tok, n);
    other = apr_hash_get(ring->by_name, e->key.name, APR_HASH_KEY_STRING);
    if (other) {
        return keys_fail(perr, p, lineno,
                         "duplicate key name '%s' (first on line %d)",
                         e->key.name, other->key.line);
    }

    if (!keys_token(line, len, &pos, &tok, &n)) {
        return keys_fail(perr, p, lineno,
                         "missing 'sha256:<hash>' after the key name");
    }
    rv = keys_parse_hash(e->key.hash, tok, n, lineno, perr, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }

    while (keys_token(line, len, &pos, &tok, &n)) {
        rv = keys_parse_attr(e, &seen, tok, n, lineno, perr, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }

    if (!e->key.tenant) {
        e->key.tenant = e->key.name;
    }
    if (!e->key.models) {
        e->key.models = apr_array_make(p, 1, sizeof(const char *));
    }
    other = (keys_entry_t *)ark_keys_lookup_hash(ring, e->key.hash);
    if (other) {
        return keys_fail(perr, p, lineno,
                         "same hash as key '%s' (line "
                         "%d): two keys cannot share a secret",
                         other->key.name, other->key.line);
    }
    *pe = e;
    return APR_SUCCESS;
}

static const char *keys_join(apr_array_header_t *lines, apr_pool_t *p)
{
    return lines->nelts ? apr_array_pstrcat(p, lines, '\0') : "";
}

apr_status_t ark_keys_parse(ark_keyring_t **pring, const char *text,
                            apr_size_t len, const char **perr, apr_pool_t *p)
{
    ark_keyring_t *ring;
    apr_array_header_t *lead, *doc; /* pending comment lines */
    keys_entry_t *e = NULL;
    const char *line, *nl;
    apr_size_t pos = 0, llen, i, next;
    int lineno = 0;
    apr_status_t rv;

    *pring = NULL;
    *perr = NULL;
    rv = ark_keys_make(&ring, p);
    if (rv != APR_SUCCESS) {
        *perr = "OpenSSL does not provide SHA-256";
        return rv;
    }
    lead = apr_array_make(p, 8, sizeof(const char *));
    doc = apr_array_make(p, 8, sizeof(const char *));

    /* Tolerate a UTF-8 byte order mark left by some editors. */
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) {
        pos = 3;
    }
    while (pos < len) {
        lineno++;
        line = text + pos;
        nl = memchr(line, '\n', len - pos);
        llen = nl ? (apr_size_t)(nl - line) : len - pos;
        next = pos + llen + (nl ? 1 : 0);
        if (llen > 0 && line[llen - 1] == '\r') {
            llen--;
        }
        if (memchr(line, '\0', llen)) {
            return keys_fail(perr, p, lineno, "contains a NUL byte");
        }
        for (i = 0; i < llen && keys_is_space(line[i]); i++) {
        }
        if (i == llen) {
            /* A blank line ends any comment block directly above a key. */
            apr_array_cat(lead, doc);
            apr_array_clear(doc);
            APR_ARRAY_PUSH(lead, const char *) = "\n";
        }
        else if (line[i] == '#') {
            APR_ARRAY_PUSH(doc, const char *) =
                apr_pstrcat(p, apr_pstrmemdup(p, line, llen), "\n", NULL);
        }
        else {
            rv = keys_parse_key(ring, line, llen, lineno, &e, perr, p);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            e->lead = keys_join(lead, p);
            e->doc = keys_join(doc, p);
            apr_array_clear(lead);
            apr_array_clear(doc);
            keys_append(ring, e);
        }
        pos = next;
    }
    apr_array_cat(lead, doc);
    ring->trailer = keys_join(lead, p);
    *pring = ring;
    return APR_SUCCESS;
}

static const char *keys_strerror(apr_status_t rv, apr_pool_t *p)
{
    char buf[256];

    return apr_pstrdup(p, apr_strerror(rv, buf, sizeof(buf)));
}

apr_status_t ark_keys_load(ark_keyring_t **pring, const char *path,
                           const char **perr, apr_pool_t *p)
{
    apr_pool_t *tmp;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t got = 0;
    char *buf;
    const char *msg;
    apr_status_t rv;

    *pring = NULL;
    *perr = NULL;
    rv = apr_pool_create(&tmp, p);
    if (rv != APR_SUCCESS) {
        *perr = apr_psprintf(p, "%s: cannot create a pool: %s", path,
                             keys_strerror(rv, p));
        return rv;
    }
    apr_pool_tag(tmp, "ark_keys_load");

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_FPROT_OS_DEFAULT, tmp);
    if (rv != APR_SUCCESS) {
        *perr = apr_psprintf(p, "cannot open keys file '%s': %s", path,
                             keys_strerror(rv, p));
        goto leave;
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, f);
    if (rv != APR_SUCCESS) {
        *perr = apr_psprintf(p, "cannot stat keys file '%s': %s", path,
                             keys_strerror(rv, p));
        goto leave;
    }
    if (fi.filetype != APR_REG) {
        *perr = apr_psprintf(p, "keys file '%s' is not a regular file", path);
        rv = APR_EINVAL;
        goto leave;
    }
    if (fi.size > ARK_KEYS_FILE_MAX) {
        *perr = apr_psprintf(p, "keys file '%s' is larger than %d bytes", path,
                             ARK_KEYS_FILE_MAX);
        rv = APR_EINVAL;
        goto leave;
    }
    buf = apr_palloc(tmp, (apr_size_t)fi.size + 1);
    if (fi.size > 0) {
        rv = apr_file_read_full(f, buf, (apr_size_t)fi.size, &got);
        if (rv != APR_SUCCESS) {
            *perr = apr_psprintf(p, "cannot read keys file '%s': %s", path,
                                 keys_strerror(rv, p));
            goto leave;
        }
    }
    rv = ark_keys_parse(pring, buf, got, &msg, p);
    if (rv != APR_SUCCESS) {
        *perr = apr_psprintf(p, "%s: %s", path, msg);
    }
leave:
    apr_pool_destroy(tmp);
    return rv;
}

/* ------------------------------------------------------------------ */
/* Lookup and accessors                                               */
/* ------------------------------------------------------------------ */

const ark_key_t *ark_keys_lookup_hash(const ark_keyring_t *ring,
                                      const unsigned char *hash)
{
    const keys_entry_t *e, *found = NULL;

    if (!ring || !hash) {
        return NULL;
    }
    /* Scan the whole chain, even after a match, so the time spent does
     * not tell a match at the head of the chain from one further on. */
    for (e = ring->buckets[keys_bucket_of(hash) & ring->mask]; e; e = e->next) {
        if (CRYPTO_memcmp(e->key.hash, hash, ARK_KEY_HASH_LEN) == 0) {
            found = e;
        }
    }
    return found ? &found->key : NULL;
}

const ark_key_t *ark_keys_lookup(const ark_keyring_t *ring, const char *secret,
                                 apr_size_t len)
{
    unsigned char digest[ARK_KEY_HASH_LEN];

    if (!ring || !secret) {
        return NULL;
    }
    if (!keys_digest(ring->md, digest, secret, len)) {
        return NULL;
    }
    return ark_keys_lookup_hash(ring, digest);
}

const ark_key_t *ark_keys_find_name(const ark_keyring_t *ring, const char *name)
{
    keys_entry_t *e;

    if (!ring || !name) {
        return NULL;
    }
    e = apr_hash_get(ring->by_name, name, APR_HASH_KEY_STRING);
    return e ? &e->key : NULL;
}

int ark_key_allows_model(const ark_key_t *key, const char *model)
{
    int i;

    if (!key || !model) {
        return 0;
    }
    if (key->all_models) {
        return 1;
    }
    for (i = 0; key->models && i < key->models->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(key->models, i, const char *), model)) {
            return 1;
        }
    }
    return 0;
}

int ark_keys_count(const ark_keyring_t *ring)
{
    return ring ? ring->entries->nelts : 0;
}

const ark_key_t *ark_keys_at(const ark_keyring_t *ring, int i)
{
    if (!ring || i < 0 || i >= ring->entries->nelts) {
        return NULL;
    }
    return &APR_ARRAY_IDX(ring->entries, i, keys_entry_t *)->key;
}

/* ------------------------------------------------------------------ */
/* Writing                                                            */
/* ------------------------------------------------------------------ */

static void keys_hex(char *out, const unsigned char *h, apr_size_t n)
{
    static const char digits[] = "0123456789abcdef";
    apr_size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

static const char *keys_line(const ark_key_t *k, apr_pool_t *p)
{
    apr_array_header_t *parts = apr_array_make(p, 16, sizeof(const char *));
    char hex[KEYS_HASH_HEX_LEN + 1];
    int i;

    keys_hex(hex, k->hash, ARK_KEY_HASH_LEN);
    APR_ARRAY_PUSH(parts, const char *) =
        apr_pstrcat(p, k->name, " " KEYS_HASH_PREFIX, hex, NULL);
    if (k->tenant && strcmp(k->tenant, k->name)) {
        APR_ARRAY_PUSH(parts, const char *) =
            apr_pstrcat(p, " tenant=", k->tenant, NULL);
    }
    if (!k->all_models) {
        APR_ARRAY_PUSH(parts, const char *) = " models=";
        for (i = 0; i < k->models->nelts; i++) {
            APR_ARRAY_PUSH(parts, const char *) =
                apr_pstrcat(p, i ? "," : "",
                            APR_ARRAY_IDX(k->models, i, const char *), NULL);
        }
    }
    if (k->priority != ARK_PRIO_NORMAL) {
        APR_ARRAY_PUSH(parts, const char *) = apr_pstrcat(
            p, " priority=", ark_priority_name((ark_priority_t)k->priority),
            NULL);
    }
    if (k->tags && k->tags->nelts) {
        APR_ARRAY_PUSH(parts, const char *) = " tags=";
        for (i = 0; i < k->tags->nelts; i++) {
            const ark_tag_t *t = &APR_ARRAY_IDX(k->tags, i, ark_tag_t);

            APR_ARRAY_PUSH(parts, const char *) =
                apr_pstrcat(p, i ? "," : "", t->key, "=", t->value, NULL);
        }
    }
    if (!k->enabled) {
        APR_ARRAY_PUSH(parts, const char *) = " state=revoked";
    }
    if (k->created) {
        APR_ARRAY_PUSH(parts, const char *) =
            apr_pstrcat(p, " created=", k->created, NULL);
    }
    if (k->hint) {
        APR_ARRAY_PUSH(parts, const char *) =
            apr_pstrcat(p, " hint=", k->hint, NULL);
    }
    APR_ARRAY_PUSH(parts, const char *) = "\n";
    return apr_array_pstrcat(p, parts, '\0');
}

apr_status_t ark_keys_format(const char **ptext, const ark_keyring_t *ring,
                             apr_pool_t *p)
{
    apr_array_header_t *parts;
    const keys_entry_t *e;
    const char *body, *s;
    int i;

    *ptext = NULL;
    if (!ring) {
        return APR_EINVAL;
    }
    parts =
        apr_array_make(p, 3 * ring->entries->nelts + 2, sizeof(const char *));
    for (i = 0; i < ring->entries->nelts; i++) {
        e = APR_ARRAY_IDX(ring->entries, i, const keys_entry_t *);
        APR_ARRAY_PUSH(parts, const char *) = e->lead;
        APR_ARRAY_PUSH(parts, const char *) = e->doc;
        APR_ARRAY_PUSH(parts, const char *) = keys_line(&e->key, p);
    }
    APR_ARRAY_PUSH(parts, const char *) = ring->trailer;
    body = apr_array_pstrcat(p, parts, '\0');

    for (s = body; *s == '\n' || keys_is_space(*s); s++) {
    }
    *ptext = (*s == '#') ? body : apr_pstrcat(p, keys_header, body, NULL);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Secrets and helpers                                                */
/* ------------------------------------------------------------------ */

void ark_keys_hash(unsigned char out[ARK_KEY_HASH_LEN], const char *secret,
                   apr_size_t len)
{
    if (!keys_digest(EVP_sha256(), out, secret, len)) {
        memset(out, 0, ARK_KEY_HASH_LEN);
    }
}

/* Unpadded base64url (RFC 4648 section 5); out gets 4n/3 rounded up. */
static void keys_b64url(char *out, const unsigned char *in, apr_size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    apr_uint32_t v;
    apr_size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        v = (apr_uint32_t)in[i] << 16 | (apr_uint32_t)in[i + 1] << 8 |
            in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        v = (apr_uint32_t)in[i] << 16;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
    }
    else if (n - i == 2) {
        v = (apr_uint32_t)in[i] << 16 | (apr_uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
}

apr_status_t ark_keys_secret_make(const char **psecret, apr_pool_t *p)
{
    unsigned char raw[ARK_KEY_SECRET_BYTES];
    char *s;

    *psecret = NULL;
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        OPENSSL_cleanse(raw, sizeof(raw));
        return APR_EGENERAL;
    }
    s = apr_palloc(p, ARK_KEY_SECRET_LEN + 1);
    memcpy(s, ARK_KEY_SECRET_PREFIX, ARK_KEY_SECRET_PREFIX_LEN);
    keys_b64url(s + ARK_KEY_SECRET_PREFIX_LEN, raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    *psecret = s;
    return APR_SUCCESS;
}

int ark_keys_secret_wellformed(const char *secret, apr_size_t len)
{
    apr_size_t i;

    if (!secret || len != ARK_KEY_SECRET_LEN ||
        memcmp(secret, ARK_KEY_SECRET_PREFIX, ARK_KEY_SECRET_PREFIX_LEN)) {
        return 0;
    }
    for (i = ARK_KEY_SECRET_PREFIX_LEN; i < len; i++) {
        if (!keys_is_b64url_char(secret[i])) {
            return 0;
        }
    }
    return 1;
}

int ark_keys_name_valid(const char *name)
{
    return name && keys_name_validn(name, strlen(name));
}

int ark_keys_model_valid(const char *model)
{
    return model && keys_model_validn(model, strlen(model));
}

apr_status_t ark_keys_timestamp_make(const char **pstamp, apr_time_t t,
                                     apr_pool_t *p)
{
    apr_time_exp_t tm;
    apr_status_t rv;

    *pstamp = NULL;
    rv = apr_time_exp_gmt(&tm, t);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pstamp = apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour, tm.tm_min, tm.tm_sec);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Editing (CLI only)                                                 */
/* ------------------------------------------------------------------ */

void ark_key_init(ark_key_t *key)
{
    memset(key, 0, sizeof(*key));
    key->all_models = 1;
    key->priority = ARK_PRIO_NORMAL;
    key->enabled = 1;
}

/* Checks the fields of key that which (ARK_KEY_SET_* bits) selects, as
 * the parser would check them in a file. Messages come from p. */
static apr_status_t keys_check_attrs(const ark_key_t *key, unsigned int which,
                                     const char **perr, apr_pool_t *p)
{
    const char *m;
    int i;

    if ((which & ARK_KEY_SET_TENANT) && key->tenant &&
        !ark_keys_name_valid(key->tenant)) {
        *perr = "invalid tenant (expected " KEYS_NAME_RULE ")";
        return APR_EINVAL;
    }
    if ((which & ARK_KEY_SET_MODELS) && !key->all_models) {
        if (!key->models || key->models->nelts == 0) {
            *perr = "empty models list (use '*' for all models)";
            return APR_EINVAL;
        }
        for (i = 0; i < key->models->nelts; i++) {
            m = APR_ARRAY_IDX(key->models, i, const char *);
            if (!ark_keys_model_valid(m)) {
                *perr = apr_psprintf(
                    p, "model alias %d is not 1-%d of " KEYS_MODEL_RULE, i + 1,
                    ARK_KEY_MODEL_MAX);
                return APR_EINVAL;
            }
        }
    }
    if ((which & ARK_KEY_SET_PRIORITY) &&
        (key->priority < 0 || key->priority >= ARK_PRIO_COUNT)) {
        *perr = "invalid priority (expected " KEYS_PRIORITY_LIST ")";
        return APR_EINVAL;
    }
    if (which & ARK_KEY_SET_TAGS) {
        m = keys_tags_check(key->tags, p);
        if (m) {
            *perr = apr_pstrcat(p, "tags: ", m, NULL);
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

/* The ring's copy of a model list; empty for all models. */
static apr_array_header_t *
keys_models_dup(int all_models, const apr_array_header_t *models, apr_pool_t *p)
{
    apr_array_header_t *out;
    int i;

    out =
        apr_array_make(p, all_models ? 1 : models->nelts, sizeof(const char *));
    for (i = 0; !all_models && i < models->nelts; i++) {
        APR_ARRAY_PUSH(out, const char *) =
            apr_pstrdup(p, APR_ARRAY_IDX(models, i, const char *));
    }
    return out;
}

/* The ring's copy of a tag list; NULL for none. */
static apr_array_header_t *keys_tags_copy(const apr_array_header_t *tags,
                                          apr_pool_t *p)
{
    apr_array_header_t *out;
    const ark_tag_t *t;
    ark_tag_t *c;
    int i;

    if (!tags || tags->nelts == 0) {
        return NULL;
    }
    out = apr_array_make(p, tags->nelts, sizeof(ark_tag_t));
    for (i = 0; i < tags->nelts; i++) {
        t = &APR_ARRAY_IDX(tags, i, ark_tag_t);
        c = apr_array_push(out);
        c->key = apr_pstrdup(p, t->key);
        c->value = apr_pstrdup(p, t->value);
    }
    return out;
}

static int keys_models_equal(const ark_key_t *a, int all_models,
                             const apr_array_header_t *models)
{
    int i;

    if (a->all_models || all_models) {
        return a->all_models && all_models;
    }
    if (a->models->nelts != models->nelts) {
        return 0;
    }
    for (i = 0; i < models->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(a->models, i, const char *),
                   APR_ARRAY_IDX(models, i, const char *))) {
            return 0;
        }
    }
    return 1;
}

/* Same tags in the same order (NULL and empty are equal). */
static int keys_tags_equal(const apr_array_header_t *a,
                           const apr_array_header_t *b)
{
    int na = a ? a->nelts : 0, nb = b ? b->nelts : 0, i;
    const ark_tag_t *x, *y;

    if (na != nb) {
        return 0;
    }
    for (i = 0; i < na; i++) {
        x = &APR_ARRAY_IDX(a, i, ark_tag_t);
        y = &APR_ARRAY_IDX(b, i, ark_tag_t);
        if (strcmp(x->key, y->key) || strcmp(x->value, y->value)) {
            return 0;
        }
    }
    return 1;
}

#define KEYS_SET_ALL                                                           \
    (ARK_KEY_SET_TENANT | ARK_KEY_SET_MODELS | ARK_KEY_SET_PRIORITY |          \
     ARK_KEY_SET_TAGS)

apr_status_t ark_keys_add(const ark_key_t **padded, ark_keyring_t *ring,
                          const ark_key_t *key, const char **perr)
{
    apr_pool_t *p;
    keys_entry_t *e;
    const ark_key_t *other;
    apr_status_t rv;

    if (padded) {
        *padded = NULL;
    }
    *perr = NULL;
    if (!ring || !key) {
        *perr = "no keyring or key";
        return APR_EINVAL;
    }
    p = ring->pool;
    if (!ark_keys_name_valid(key->name)) {
        *perr = "invalid key name (expected " KEYS_NAME_RULE ")";
        return APR_EINVAL;
    }
    rv = keys_check_attrs(key, KEYS_SET_ALL, perr, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (key->created &&
        !keys_created_validn(key->created, strlen(key->created))) {
        *perr = "invalid created time (expected UTC like 2026-11-27T11:00:00Z)";
        return APR_EINVAL;
    }
    if (key->hint && !keys_hint_validn(key->hint, strlen(key->hint))) {
        *perr = "invalid hint (expected the last 4 characters of the secret)";
        return APR_EINVAL;
    }
    if (ark_keys_find_name(ring, key->name)) {
        *perr = apr_psprintf(p, "a key named '%s' already exists", key->name);
        return APR_EEXIST;
    }
    other = ark_keys_lookup_hash(ring, key->hash);
    if (other) {
        *perr = apr_psprintf(p, "key '%s' already has this hash", other->name);
        return APR_EEXIST;
    }

    e = apr_pcalloc(p, sizeof(*e));
    e->key.name = apr_pstrdup(p, key->name);
    e->key.tenant = key->tenant ? apr_pstrdup(p, key->tenant) : e->key.name;
    memcpy(e->key.hash, key->hash, ARK_KEY_HASH_LEN);
    e->key.all_models = key->all_models ? 1 : 0;
    e->key.models = keys_models_dup(e->key.all_models, key->models, p);
    e->key.priority = key->priority;
    e->key.tags = keys_tags_copy(key->tags, p);
    e->key.enabled = key->enabled ? 1 : 0;
    e->key.created = key->created ? apr_pstrdup(p, key->created) : NULL;
    e->key.hint = key->hint ? apr_pstrdup(p, key->hint) : NULL;
    e->key.line = 0;
    e->lead = "";
    e->doc = "";
    keys_append(ring, e);
    if (padded) {
        *padded = &e->key;
    }
    return APR_SUCCESS;
}

apr_status_t ark_keys_set_attrs(int *pchanged, ark_keyring_t *ring,
                                const char *name, const ark_key_t *attrs,
                                unsigned int which, const char **perr)
{
    keys_entry_t *e;
    ark_key_t *k;
    const char *tenant;
    int changed = 0;
    apr_status_t rv;

    if (pchanged) {
        *pchanged = 0;
    }
    *perr = NULL;
    if (!ring || !name || !attrs) {
        *perr = "no keyring, name or attributes";
        return APR_EINVAL;
    }
    e = apr_hash_get(ring->by_name, name, APR_HASH_KEY_STRING);
    if (!e) {
        *perr = ark_keys_name_valid(name)
                    ? apr_psprintf(ring->pool, "no key named '%s'", name)
                    : "no key of that name";
        return APR_ENOENT;
    }
    k = &e->key;
    /* All checks before any change: a failure leaves the key as it was. */
    rv = keys_check_attrs(attrs, which, perr, ring->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (which & ARK_KEY_SET_TENANT) {
        tenant = attrs->tenant ? attrs->tenant : k->name;
        if (strcmp(k->tenant, tenant)) {
            k->tenant = apr_pstrdup(ring->pool, tenant);
            changed = 1;
        }
    }
    if ((which & ARK_KEY_SET_MODELS) &&
        !keys_models_equal(k, attrs->all_models ? 1 : 0, attrs->models)) {
        k->all_models = attrs->all_models ? 1 : 0;
        k->models = keys_models_dup(k->all_models, attrs->models, ring->pool);
        changed = 1;
    }
    if ((which & ARK_KEY_SET_PRIORITY) && k->priority != attrs->priority) {
        k->priority = attrs->priority;
        changed = 1;
    }
    if ((which & ARK_KEY_SET_TAGS) && !keys_tags_equal(k->tags, attrs->tags)) {
        k->tags = keys_tags_copy(attrs->tags, ring->pool);
        changed = 1;
    }
    if (pchanged) {
        *pchanged = changed;
    }
    return APR_SUCCESS;
}

apr_status_t ark_keys_set_enabled(ark_keyring_t *ring, const char *name,
                                  int enabled)
{
    keys_entry_t *e;

    if (!ring || !name) {
        return APR_ENOENT;
    }
    e = apr_hash_get(ring->by_name, name, APR_HASH_KEY_STRING);
    if (!e) {
        return APR_ENOENT;
    }
    e->key.enabled = enabled ? 1 : 0;
    return APR_SUCCESS;
}

apr_status_t ark_keys_remove(ark_keyring_t *ring, const char *name)
{
    keys_entry_t *e, *next;
    int i, n;

    if (!ring || !name) {
        return APR_ENOENT;
    }
    e = apr_hash_get(ring->by_name, name, APR_HASH_KEY_STRING);
    if (!e) {
        return APR_ENOENT;
    }
    n = ring->entries->nelts;
    for (i = 0; i < n; i++) {
        if (APR_ARRAY_IDX(ring->entries, i, keys_entry_t *) == e) {
            break;
        }
    }
    /* Free-standing lines above the key stay; its own comments go. */
    if (i + 1 < n) {
        next = APR_ARRAY_IDX(ring->entries, i + 1, keys_entry_t *);
        next->lead = apr_pstrcat(ring->pool, e->lead, next->lead, NULL);
    }
    else {
        ring->trailer = apr_pstrcat(ring->pool, e->lead, ring->trailer, NULL);
    }
    if (i + 1 < n) {
        memmove(&APR_ARRAY_IDX(ring->entries, i, keys_entry_t *),
                &APR_ARRAY_IDX(ring->entries, i + 1, keys_entry_t *),
                (apr_size_t)(n - i - 1) * sizeof(keys_entry_t *));
    }
    ring->entries->nelts--;
    apr_hash_set(ring->by_name, name, APR_HASH_KEY_STRING, NULL);
    keys_index_unlink(ring, e);
    return APR_SUCCESS;
}
