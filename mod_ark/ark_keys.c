/* Ark virtual keys: the keys file parser, the digest index and the writer.
 *
 * ark_keys_parse() walks the file text line by line. Comment and blank
 * lines are kept as text attached to the following key or tenant line (so
 * the CLI can rewrite the file without losing an admin's notes); each key
 * line is split into whitespace-separated tokens, validated, copied into
 * the ring's pool and entered into two indexes: an apr_hash by name (for
 * duplicate detection and the CLI) and a chained hash table on the first
 * four bytes of the SHA-256 digest (for ark_keys_lookup). A key rotated by
 * ark-keys has two digests, its current one and its previous one (valid
 * until previous_until); each is a slot of its own in the digest table, so
 * both are found the same way. The digest table is a power-of-two array of
 * bucket heads; it is grown whenever the key count exceeds the bucket
 * count, so chains stay short on average.
 *
 * Example: with 10 000 keys the table has 16 384 buckets; a lookup hashes
 * the secret, takes digest bytes 0-3 as a big-endian number, masks it with
 * 16383, and compares the full 32-byte digest of each slot in that chain
 * (usually zero or one) with CRYPTO_memcmp, scanning the whole chain even
 * after a match. ark_keys_lookup accepts only a current digest,
 * ark_keys_lookup_ex a previous one too.
 *
 * Governance attributes (rpm=, tpm=, concurrency=, budget_day=,
 * budget_month=, rpm@<provider>=, tpm@<provider>=) are parsed into
 * ark_limits_t and ark_provider_limit_t; budgets are money in nano-units
 * (ark_money_parse of ark_limit.c). A "tenant:<name>" line carries the
 * limits of a whole tenant; tenant lines keep their place in the file.
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
#include "ark_limit.h"
#include "ark_route.h"

/* Initial (and minimum) number of digest buckets; a power of two. */
#define KEYS_BUCKETS_MIN 16

/* Longest user-supplied token an error message will quote. Shorter than
 * any secret (50) or hex digest (64), so neither can be echoed whole. */
#define KEYS_ECHO_MAX 32

#define KEYS_HASH_PREFIX "sha256:"
#define KEYS_HASH_PREFIX_LEN 7
#define KEYS_HASH_HEX_LEN (2 * ARK_KEY_HASH_LEN)

/* Largest rpm=, tpm= or concurrency= value. */
#define KEYS_LIMIT_MAX 1000000000000LL

/* Longest provider name in rpm@<provider>= and tpm@<provider>=. */
#define KEYS_PROVIDER_MAX 64

/* A tenant line starts with this word prefix. */
#define KEYS_TENANT_PREFIX "tenant:"
#define KEYS_TENANT_PREFIX_LEN 7

#define KEYS_NAME_RULE "1-64 characters of A-Z a-z 0-9 . _ @ -"
#define KEYS_MODEL_RULE "A-Z a-z 0-9 . _ : / @ -"
#define KEYS_TAG_RULE "A-Z a-z 0-9 . _ : / -"
#define KEYS_PROVIDER_RULE "1-64 characters of A-Z a-z 0-9 . _ -"
#define KEYS_PRIORITY_LIST "high, normal or low"
#define KEYS_ATTR_LIST                                                         \
    "tenant, models, priority, tags, state, created, hint, rpm, tpm, "         \
    "concurrency, budget_day, budget_month, rpm@<provider>, tpm@<provider>, "  \
    "previous, previous_until"
#define KEYS_TENANT_ATTR_LIST "rpm, tpm, concurrency, budget_day, budget_month"
#define KEYS_LIMIT_RULE "a whole number from 1 to 1000000000000"
#define KEYS_MONEY_RULE                                                        \
    "an amount above 0 with at most 9 decimals, such as 25 or 0.50"
#define KEYS_TIME_RULE "UTC like 2026-11-27T11:00:00Z"

static const char keys_header[] =
    "# Ark virtual keys. Edit with ark-keys; see docs/keys.md.\n"
    "# <name> sha256:<hex SHA-256 of the secret> [tenant=<tenant>]\n"
    "#   [models=<alias>,<alias>...|*] [priority=high|normal|low]\n"
    "#   [tags=<key>=<value>,<key>=<value>...] [state=enabled|revoked]\n"
    "#   [created=<YYYY-MM-DDTHH:MM:SSZ>] [hint=<last 4 characters>]\n"
    "#   [rpm=<n>] [tpm=<n>] [concurrency=<n>] [budget_day=<amount>]\n"
    "#   [budget_month=<amount>] [rpm@<provider>=<n>] [tpm@<provider>=<n>]\n"
    "#   [previous=sha256:<hex> previous_until=<YYYY-MM-DDTHH:MM:SSZ>]\n"
    "# tenant:<tenant> [rpm=<n>] [tpm=<n>] [concurrency=<n>]\n"
    "#   [budget_day=<amount>] [budget_month=<amount>]\n"
    "# Defaults: tenant=<name> models=* priority=normal state=enabled,\n"
    "# no tags, no limits. httpd reads this file on start and graceful\n"
    "# reload. Secrets are never stored here, only their hashes.\n"
    "\n";

typedef enum {
    KEYS_ATTR_TENANT,
    KEYS_ATTR_MODELS,
    KEYS_ATTR_PRIORITY,
    KEYS_ATTR_TAGS,
    KEYS_ATTR_STATE,
    KEYS_ATTR_CREATED,
    KEYS_ATTR_HINT,
    KEYS_ATTR_RPM, /* the limits: rpm to budget_month, also on tenants */
    KEYS_ATTR_TPM,
    KEYS_ATTR_CONCURRENCY,
    KEYS_ATTR_BUDGET_DAY,
    KEYS_ATTR_BUDGET_MONTH,
    KEYS_ATTR_PREVIOUS,
    KEYS_ATTR_PREVIOUS_UNTIL,
    KEYS_ATTR_COUNT
} keys_attr_e;

static const char *const keys_attr_names[KEYS_ATTR_COUNT] = {
    "tenant",     "models",       "priority", "tags",          "state",
    "created",    "hint",         "rpm",      "tpm",           "concurrency",
    "budget_day", "budget_month", "previous", "previous_until"};

/* A tenant line may carry only the limits. */
#define KEYS_ATTR_IS_LIMIT(a)                                                  \
    ((a) >= KEYS_ATTR_RPM && (a) <= KEYS_ATTR_BUDGET_MONTH)

typedef struct keys_entry_t keys_entry_t;
typedef struct keys_slot_t keys_slot_t;

/* One digest in the bucket index: a key's current or previous hash. */
struct keys_slot_t {
    keys_slot_t *next;         /* digest bucket chain */
    keys_entry_t *entry;       /* the key it belongs to */
    const unsigned char *hash; /* entry->key.hash or .previous_hash */
    int previous;              /* 1 for the previous hash */
};

/* A key plus what only this file needs. key must stay the first member:
 * the public functions hand out &entry->key and get it back. */
struct keys_entry_t {
    ark_key_t key;
    keys_slot_t cur;  /* always in the index */
    keys_slot_t prev; /* in the index while key.has_previous */
};

/* A key or tenant line of the file with the comment lines above it. */
typedef struct keys_line_t {
    keys_entry_t *entry;  /* a key line, or NULL */
    ark_tenant_t *tenant; /* a tenant line, or NULL */
    const char *lead;     /* free comment/blank lines above; never NULL */
    const char *doc;      /* comment lines directly above; never NULL */
} keys_line_t;

struct ark_keyring_t {
    apr_pool_t *pool;
    apr_array_header_t *lines;   /* keys_line_t *, file order */
    apr_array_header_t *entries; /* keys_entry_t *, file order */
    apr_array_header_t *tenants; /* ark_tenant_t *, file order */
    apr_hash_t *by_name;         /* name -> keys_entry_t * */
    apr_hash_t *tenant_by_name;  /* name -> ark_tenant_t * */
    keys_slot_t **buckets;       /* mask + 1 chain heads */
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

/* The time of a valid created= style stamp (keys_created_validn). */
static apr_time_t keys_time_of(const char *s)
{
    apr_time_exp_t tm;
    apr_time_t t;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = keys_digits(s, 4) - 1900;
    tm.tm_mon = keys_digits(s + 5, 2) - 1;
    tm.tm_mday = keys_digits(s + 8, 2);
    tm.tm_hour = keys_digits(s + 11, 2);
    tm.tm_min = keys_digits(s + 14, 2);
    tm.tm_sec = keys_digits(s + 17, 2);
    if (apr_time_exp_gmt_get(&t, &tm) != APR_SUCCESS) {
        return 0;
    }
    return t;
}

/* A previous_until= stamp: as created=, but without a leap second, so
 * that it is written back exactly as it was read. */
static int keys_until_validn(const char *s, apr_size_t n)
{
    return keys_created_validn(s, n) && keys_digits(s + 17, 2) <= 59;
}

static int keys_provider_validn(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || n > KEYS_PROVIDER_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!keys_is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/* A limit value: 1 to KEYS_LIMIT_MAX in decimal digits; 0 if invalid. */
static apr_int64_t keys_limit_parsen(const char *s, apr_size_t n)
{
    apr_int64_t v = 0;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (!keys_is_digit(s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
        if (v > KEYS_LIMIT_MAX) {
            return 0;
        }
    }
    return v;
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

static void keys_slot_insert(ark_keyring_t *ring, keys_slot_t *slot)
{
    keys_slot_t **head;

    head = &ring->buckets[keys_bucket_of(slot->hash) & ring->mask];
    slot->next = *head;
    *head = slot;
}

/* Enter the key's digests (current, and previous if any) in the index. */
static void keys_index_insert(ark_keyring_t *ring, keys_entry_t *e)
{
    e->cur.entry = e;
    e->cur.hash = e->key.hash;
    e->cur.previous = 0;
    keys_slot_insert(ring, &e->cur);
    if (e->key.has_previous) {
        e->prev.entry = e;
        e->prev.hash = e->key.previous_hash;
        e->prev.previous = 1;
        keys_slot_insert(ring, &e->prev);
    }
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

static void keys_slot_unlink(ark_keyring_t *ring, keys_slot_t *slot)
{
    keys_slot_t **pp;

    pp = &ring->buckets[keys_bucket_of(slot->hash) & ring->mask];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == slot) {
            *pp = slot->next;
            slot->next = NULL;
            return;
        }
    }
}

/* Take the key's digests out of the index (before they change). */
static void keys_index_unlink(ark_keyring_t *ring, keys_entry_t *e)
{
    keys_slot_unlink(ring, &e->cur);
    if (e->key.has_previous) {
        keys_slot_unlink(ring, &e->prev);
    }
}

/* The slot holding hash, or NULL. With any_previous 0 only current
 * hashes match. The whole chain is scanned with CRYPTO_memcmp, even after
 * a match, so the time spent does not tell a match at the head of the
 * chain from one further on, nor a current hash from a previous one. A
 * valid ring has no hash twice; should it, a current one wins. */
static const keys_slot_t *keys_index_find(const ark_keyring_t *ring,
                                          const unsigned char *hash,
                                          int any_previous)
{
    const keys_slot_t *s, *found = NULL;
    int match;

    for (s = ring->buckets[keys_bucket_of(hash) & ring->mask]; s; s = s->next) {
        match = CRYPTO_memcmp(s->hash, hash, ARK_KEY_HASH_LEN) == 0;
        if (match && (any_previous || !s->previous) &&
            (!found || found->previous)) {
            found = s;
        }
    }
    return found;
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
    ring->lines = apr_array_make(p, 16, sizeof(keys_line_t *));
    ring->entries = apr_array_make(p, 16, sizeof(keys_entry_t *));
    ring->tenants = apr_array_make(p, 4, sizeof(ark_tenant_t *));
    ring->by_name = apr_hash_make(p);
    ring->tenant_by_name = apr_hash_make(p);
    ring->buckets = apr_pcalloc(p, KEYS_BUCKETS_MIN * sizeof(*ring->buckets));
    ring->mask = KEYS_BUCKETS_MIN - 1;
    ring->trailer = "";
    *pring = ring;
    return APR_SUCCESS;
}

/* A new file line, for a key or a tenant, after the last one. */
static keys_line_t *keys_line_push(ark_keyring_t *ring, const char *lead,
                                   const char *doc)
{
    keys_line_t *l = apr_pcalloc(ring->pool, sizeof(*l));

    l->lead = lead;
    l->doc = doc;
    APR_ARRAY_PUSH(ring->lines, keys_line_t *) = l;
    return l;
}

/* Enter a fully built entry into the ring as its last line. The caller
 * has checked that its name and hashes are not present yet. */
static void keys_append(ark_keyring_t *ring, keys_entry_t *e, const char *lead,
                        const char *doc)
{
    keys_line_push(ring, lead, doc)->entry = e;
    APR_ARRAY_PUSH(ring->entries, keys_entry_t *) = e;
    apr_hash_set(ring->by_name, e->key.name, APR_HASH_KEY_STRING, e);
    keys_index_insert(ring, e);
    keys_index_fit(ring);
}

/* Enter a tenant line into the ring as its last line. The caller has
 * checked that its name is not present yet. */
static void keys_append_tenant(ark_keyring_t *ring, ark_tenant_t *t,
                               const char *lead, const char *doc)
{
    keys_line_push(ring, lead, doc)->tenant = t;
    APR_ARRAY_PUSH(ring->tenants, ark_tenant_t *) = t;
    apr_hash_set(ring->tenant_by_name, t->name, APR_HASH_KEY_STRING, t);
}

/* Drop line i: its own comments go, the free-standing lines above it are
 * kept (moved to the next line, or the trailer). */
static void keys_line_drop(ark_keyring_t *ring, int i)
{
    keys_line_t *l = APR_ARRAY_IDX(ring->lines, i, keys_line_t *), *next;
    int n = ring->lines->nelts;

    if (i + 1 < n) {
        next = APR_ARRAY_IDX(ring->lines, i + 1, keys_line_t *);
        next->lead = apr_pstrcat(ring->pool, l->lead, next->lead, NULL);
        memmove(&APR_ARRAY_IDX(ring->lines, i, keys_line_t *),
                &APR_ARRAY_IDX(ring->lines, i + 1, keys_line_t *),
                (apr_size_t)(n - i - 1) * sizeof(keys_line_t *));
    }
    else {
        ring->trailer = apr_pstrcat(ring->pool, l->lead, ring->trailer, NULL);
    }
    ring->lines->nelts--;
}

/* Remove the pointer p from an array of pointers, keeping the order. */
static void keys_array_remove(apr_array_header_t *a, const void *ptr)
{
    int i;

    for (i = 0; i < a->nelts; i++) {
        if (APR_ARRAY_IDX(a, i, const void *) == ptr) {
            memmove(&APR_ARRAY_IDX(a, i, const void *),
                    &APR_ARRAY_IDX(a, i + 1, const void *),
                    (apr_size_t)(a->nelts - i - 1) * sizeof(const void *));
            a->nelts--;
            return;
        }
    }
}

/* The index of the line of a key entry or tenant, or -1. */
static int keys_line_find(const ark_keyring_t *ring, const void *what)
{
    const keys_line_t *l;
    int i;

    for (i = 0; i < ring->lines->nelts; i++) {
        l = APR_ARRAY_IDX(ring->lines, i, const keys_line_t *);
        if ((const void *)l->entry == what || (const void *)l->tenant == what) {
            return i;
        }
    }
    return -1;
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

/* Parses "sha256:<64 hex>" into out. what is "" for a key's hash, or
 * "previous: " for the value of previous=, and prefixes every message. */
static apr_status_t keys_parse_hash(unsigned char *out, const char *tok,
                                    apr_size_t n, const char *what, int lineno,
                                    const char **perr, apr_pool_t *p)
{
    apr_size_t i;
    int hi, lo;

    if (n < KEYS_HASH_PREFIX_LEN ||
        memcmp(tok, KEYS_HASH_PREFIX, KEYS_HASH_PREFIX_LEN)) {
        return keys_fail(perr, p, lineno,
                         "%sexpected 'sha256:' and %d "
                         "lowercase hex digits%s",
                         what, KEYS_HASH_HEX_LEN,
                         *what ? "" : " after the key name");
    }
    tok += KEYS_HASH_PREFIX_LEN;
    n -= KEYS_HASH_PREFIX_LEN;
    if (n != KEYS_HASH_HEX_LEN) {
        return keys_fail(perr, p, lineno,
                         "%shash has %" APR_SIZE_T_FMT
                         " hex digits, expected %d",
                         what, n, KEYS_HASH_HEX_LEN);
    }
    for (i = 0; i < ARK_KEY_HASH_LEN; i++) {
        hi = keys_hex_value(tok[2 * i]);
        lo = keys_hex_value(tok[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return keys_fail(perr, p, lineno,
                             "%shash has a character that "
                             "is not a lowercase hex digit",
                             what);
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return APR_SUCCESS;
}

/* The KEYS_ATTR_* of an attribute name, or -1. */
static int keys_attr_find(const char *name, apr_size_t n)
{
    int a;

    for (a = 0; a < KEYS_ATTR_COUNT; a++) {
        if (strlen(keys_attr_names[a]) == n &&
            !memcmp(keys_attr_names[a], name, n)) {
            return a;
        }
    }
    return -1;
}

/* Splits a word at its first '=' into an attribute name and value.
 * where names the line's kind for the message ("hash", "tenant name"). */
static apr_status_t keys_attr_split(const char *tok, apr_size_t n,
                                    apr_size_t *pklen, const char **pval,
                                    apr_size_t *pvlen, const char *where,
                                    int lineno, const char **perr,
                                    apr_pool_t *p)
{
    const char *eq = memchr(tok, '=', n);

    if (!eq) {
        return keys_fail(perr, p, lineno,
                         "expected attribute=value after "
                         "the %s, found a word without '='",
                         where);
    }
    *pklen = (apr_size_t)(eq - tok);
    *pval = eq + 1;
    *pvlen = n - *pklen - 1;
    return APR_SUCCESS;
}

/* " 'value'" when value is short and harmless enough to quote, else "". */
static const char *keys_quoted(const char *s, apr_size_t n, apr_pool_t *p)
{
    const char *echo = keys_echo(s, n, p);

    return echo ? apr_pstrcat(p, " '", echo, "'", NULL) : "";
}

/* Parses the value of one of the limit attributes (KEYS_ATTR_IS_LIMIT)
 * into *l. The attribute is known not to have been given before. */
static apr_status_t keys_parse_limit(ark_limits_t *l, int a, const char *val,
                                     apr_size_t vlen, int lineno,
                                     const char **perr, apr_pool_t *p)
{
    apr_int64_t v, *slot;

    switch (a) {
    case KEYS_ATTR_RPM:
        slot = &l->rpm;
        break;
    case KEYS_ATTR_TPM:
        slot = &l->tpm;
        break;
    case KEYS_ATTR_CONCURRENCY:
        slot = &l->concurrency;
        break;
    case KEYS_ATTR_BUDGET_DAY:
        slot = &l->budget_day;
        break;
    default:
        slot = &l->budget_month;
        break;
    }
    if (a == KEYS_ATTR_BUDGET_DAY || a == KEYS_ATTR_BUDGET_MONTH) {
        if (ark_money_parse(&v, apr_pstrmemdup(p, val, vlen)) != APR_SUCCESS ||
            v <= 0) {
            return keys_fail(perr, p, lineno,
                             "invalid %s%s (expected " KEYS_MONEY_RULE ")",
                             keys_attr_names[a], keys_quoted(val, vlen, p));
        }
    }
    else {
        v = keys_limit_parsen(val, vlen);
        if (v <= 0) {
            return keys_fail(perr, p, lineno,
                             "invalid %s%s (expected " KEYS_LIMIT_RULE ")",
                             keys_attr_names[a], keys_quoted(val, vlen, p));
        }
    }
    *slot = v;
    return APR_SUCCESS;
}

/* The key's limit towards provider, or NULL. */
static ark_provider_limit_t *
keys_plimit_find(apr_array_header_t *limits, const char *provider, apr_size_t n)
{
    ark_provider_limit_t *pl;
    int i;

    for (i = 0; limits && i < limits->nelts; i++) {
        pl = &APR_ARRAY_IDX(limits, i, ark_provider_limit_t);
        if (strlen(pl->provider) == n && !memcmp(pl->provider, provider, n)) {
            return pl;
        }
    }
    return NULL;
}

/* rpm@<provider>=N or tpm@<provider>=N; the name is tok[0..klen), at
 * holds its '@'. */
static apr_status_t keys_parse_plimit(keys_entry_t *e, const char *tok,
                                      apr_size_t klen, const char *at,
                                      const char *val, apr_size_t vlen,
                                      int lineno, const char **perr,
                                      apr_pool_t *p)
{
    ark_provider_limit_t *pl;
    const char *prov = at + 1, *base, *label;
    apr_size_t plen = klen - (apr_size_t)(prov - tok);
    apr_int64_t v, *slot;
    int is_rpm;

    is_rpm = (at - tok == 3 && !memcmp(tok, "rpm", 3));
    if (!is_rpm && !(at - tok == 3 && !memcmp(tok, "tpm", 3))) {
        return keys_fail(perr, p, lineno,
                         "unknown attribute%s (expected " KEYS_ATTR_LIST ")",
                         keys_quoted(tok, klen, p));
    }
    base = is_rpm ? "rpm" : "tpm";
    /* A provider name may have the shape of a secret: quote short ones. */
    label = keys_echo(tok, klen, p);
    if (!label) {
        label = apr_pstrcat(p, base, "@<provider>", NULL);
    }
    if (!keys_provider_validn(prov, plen)) {
        return keys_fail(
            perr, p, lineno,
            "invalid provider name in %s@ (expected " KEYS_PROVIDER_RULE ")",
            base);
    }
    pl = keys_plimit_find(e->key.provider_limits, prov, plen);
    if (!pl) {
        if (!e->key.provider_limits) {
            e->key.provider_limits =
                apr_array_make(p, 2, sizeof(ark_provider_limit_t));
        }
        if (e->key.provider_limits->nelts >= ARK_KEY_PROVIDER_LIMITS_MAX) {
            return keys_fail(perr, p, lineno,
                             "limits towards more than %d providers",
                             ARK_KEY_PROVIDER_LIMITS_MAX);
        }
        pl = apr_array_push(e->key.provider_limits);
        pl->provider = apr_pstrmemdup(p, prov, plen);
        pl->rpm = pl->tpm = 0;
    }
    slot = is_rpm ? &pl->rpm : &pl->tpm;
    if (*slot) {
        return keys_fail(perr, p, lineno, "attribute '%s' given twice", label);
    }
    if (vlen == 0) {
        return keys_fail(perr, p, lineno, "attribute '%s' has an empty value",
                         label);
    }
    v = keys_limit_parsen(val, vlen);
    if (v <= 0) {
        return keys_fail(perr, p, lineno,
                         "invalid %s%s (expected " KEYS_LIMIT_RULE ")", label,
                         keys_quoted(val, vlen, p));
    }
    *slot = v;
    return APR_SUCCESS;
}

static apr_status_t keys_parse_attr(keys_entry_t *e, unsigned *seen,
                                    const char *tok, apr_size_t n, int lineno,
                                    const char **perr, apr_pool_t *p)
{
    const char *val = NULL, *msg, *at;
    apr_size_t klen = 0, vlen = 0;
    int a, prio;
    apr_status_t rv;

    /* The first '=' ends the name: "tags=region=eu" is tags. */
    rv = keys_attr_split(tok, n, &klen, &val, &vlen, "hash", lineno, perr, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    a = keys_attr_find(tok, klen);
    if (a < 0) {
        at = memchr(tok, '@', klen);
        if (at) {
            return keys_parse_plimit(e, tok, klen, at, val, vlen, lineno, perr,
                                     p);
        }
        return keys_fail(perr, p, lineno,
                         "unknown attribute%s (expected " KEYS_ATTR_LIST ")",
                         keys_quoted(tok, klen, p));
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
    if (KEYS_ATTR_IS_LIMIT(a)) {
        return keys_parse_limit(&e->key.limits, a, val, vlen, lineno, perr, p);
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
            return keys_fail(perr, p, lineno,
                             "invalid priority%s "
                             "(expected " KEYS_PRIORITY_LIST ")",
                             keys_quoted(val, vlen, p));
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
            return keys_fail(perr, p, lineno,
                             "invalid state%s "
                             "(expected enabled or revoked)",
                             keys_quoted(val, vlen, p));
        }
        break;
    case KEYS_ATTR_CREATED:
        if (!keys_created_validn(val, vlen)) {
            return keys_fail(perr, p, lineno,
                             "invalid created time "
                             "(expected " KEYS_TIME_RULE ")");
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
    case KEYS_ATTR_PREVIOUS:
        rv = keys_parse_hash(e->key.previous_hash, val, vlen,
                             "previous: ", lineno, perr, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        e->key.has_previous = 1;
        break;
    case KEYS_ATTR_PREVIOUS_UNTIL:
        if (!keys_until_validn(val, vlen)) {
            return keys_fail(perr, p, lineno,
                             "invalid previous_until time "
                             "(expected " KEYS_TIME_RULE ")");
        }
        e->key.previous_until = keys_time_of(val);
        break;
    }
    return APR_SUCCESS;
}

/* Checks a parsed key's hashes against each other and against the keys
 * before it: no hash, current or previous, may appear twice in a file. */
static apr_status_t keys_check_hashes(const ark_keyring_t *ring,
                                      const keys_entry_t *e, int lineno,
                                      const char **perr, apr_pool_t *p)
{
    const keys_slot_t *other;

    other = keys_index_find(ring, e->key.hash, 1);
    if (other) {
        return keys_fail(perr, p, lineno,
                         "same hash as %skey '%s' (line "
                         "%d): two keys cannot share a secret",
                         other->previous ? "the previous secret of " : "",
                         other->entry->key.name, other->entry->key.line);
    }
    if (!e->key.has_previous) {
        return APR_SUCCESS;
    }
    if (!memcmp(e->key.previous_hash, e->key.hash, ARK_KEY_HASH_LEN)) {
        return keys_fail(perr, p, lineno,
                         "previous= is the key's own current hash");
    }
    other = keys_index_find(ring, e->key.previous_hash, 1);
    if (other) {
        return keys_fail(perr, p, lineno,
                         "previous= is also the %shash of key '%s' (line "
                         "%d): two keys cannot share a secret",
                         other->previous ? "previous " : "",
                         other->entry->key.name, other->entry->key.line);
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
    unsigned seen = 0, pair;
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
    rv = keys_parse_hash(e->key.hash, tok, n, "", lineno, perr, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }

    while (keys_token(line, len, &pos, &tok, &n)) {
        rv = keys_parse_attr(e, &seen, tok, n, lineno, perr, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    pair =
        seen & ((1u << KEYS_ATTR_PREVIOUS) | (1u << KEYS_ATTR_PREVIOUS_UNTIL));
    if (pair && pair != ((1u << KEYS_ATTR_PREVIOUS) |
                         (1u << KEYS_ATTR_PREVIOUS_UNTIL))) {
        return keys_fail(perr, p, lineno,
                         "previous= and previous_until= must be given "
                         "together");
    }

    if (!e->key.tenant) {
        e->key.tenant = e->key.name;
    }
    if (!e->key.models) {
        e->key.models = apr_array_make(p, 1, sizeof(const char *));
    }
    rv = keys_check_hashes(ring, e, lineno, perr, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pe = e;
    return APR_SUCCESS;
}

/* "tenant:<name> [rpm=N] [tpm=N] [concurrency=N] [budget_day=AMOUNT]
 * [budget_month=AMOUNT]"; the first word is known to start "tenant:". */
static apr_status_t keys_parse_tenant(ark_keyring_t *ring, const char *line,
                                      apr_size_t len, int lineno,
                                      ark_tenant_t **pt, const char **perr,
                                      apr_pool_t *p)
{
    ark_tenant_t *t;
    const ark_tenant_t *other;
    const char *tok = NULL, *val = NULL;
    apr_size_t n = 0, pos = 0, klen = 0, vlen = 0;
    unsigned seen = 0;
    int a;
    apr_status_t rv;

    keys_token(line, len, &pos, &tok, &n);
    tok += KEYS_TENANT_PREFIX_LEN;
    n -= KEYS_TENANT_PREFIX_LEN;
    if (!keys_name_validn(tok, n)) {
        return keys_fail(
            perr, p, lineno,
            "invalid tenant name after 'tenant:' (expected " KEYS_NAME_RULE
            ")");
    }
    t = apr_pcalloc(p, sizeof(*t));
    t->name = apr_pstrmemdup(p, tok, n);
    t->line = lineno;
    other = apr_hash_get(ring->tenant_by_name, t->name, APR_HASH_KEY_STRING);
    if (other) {
        return keys_fail(perr, p, lineno,
                         "duplicate tenant line for '%s' (first on line %d)",
                         t->name, other->line);
    }
    while (keys_token(line, len, &pos, &tok, &n)) {
        rv = keys_attr_split(tok, n, &klen, &val, &vlen, "tenant name", lineno,
                             perr, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        a = keys_attr_find(tok, klen);
        if (a >= 0 && !KEYS_ATTR_IS_LIMIT(a)) {
            return keys_fail(perr, p, lineno,
                             "attribute '%s' is not allowed on a tenant line "
                             "(expected " KEYS_TENANT_ATTR_LIST ")",
                             keys_attr_names[a]);
        }
        if (a < 0) {
            return keys_fail(
                perr, p, lineno,
                "%s%s on a tenant line (expected " KEYS_TENANT_ATTR_LIST ")",
                memchr(tok, '@', klen) ? "provider limits are not allowed"
                                       : "unknown attribute",
                memchr(tok, '@', klen) ? "" : keys_quoted(tok, klen, p));
        }
        if (seen & (1u << a)) {
            return keys_fail(perr, p, lineno, "attribute '%s' given twice",
                             keys_attr_names[a]);
        }
        seen |= 1u << a;
        if (vlen == 0) {
            return keys_fail(perr, p, lineno,
                             "attribute '%s' has an empty value",
                             keys_attr_names[a]);
        }
        rv = keys_parse_limit(&t->limits, a, val, vlen, lineno, perr, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    *pt = t;
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
    ark_tenant_t *t = NULL;
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
            apr_size_t clen = llen;

            /* a CR kept at the end would be read back as part of a CRLF */
            while (clen > 0 && line[clen - 1] == '\r') {
                clen--;
            }
            APR_ARRAY_PUSH(doc, const char *) =
                apr_pstrcat(p, apr_pstrmemdup(p, line, clen), "\n", NULL);
        }
        else if (llen - i >= KEYS_TENANT_PREFIX_LEN &&
                 !memcmp(line + i, KEYS_TENANT_PREFIX,
                         KEYS_TENANT_PREFIX_LEN)) {
            /* ':' is not a name character: this is no key line. */
            rv = keys_parse_tenant(ring, line, llen, lineno, &t, perr, p);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            keys_append_tenant(ring, t, keys_join(lead, p), keys_join(doc, p));
            apr_array_clear(lead);
            apr_array_clear(doc);
        }
        else {
            rv = keys_parse_key(ring, line, llen, lineno, &e, perr, p);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            keys_append(ring, e, keys_join(lead, p), keys_join(doc, p));
            apr_array_clear(lead);
            apr_array_clear(doc);
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

apr_status_t ark_keys_check_mode(const char *path, const char **perr,
                                 apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_status_t rv;
    int mode;

    *perr = NULL;
    rv = apr_stat(&fi, path, APR_FINFO_PROT, p);
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        return rv;
    }
    /* APR keeps one hex digit per class: 0x0754 is mode 0754 */
    mode = ((fi.protection >> 8) & 7) << 6 | ((fi.protection >> 4) & 7) << 3
           | (fi.protection & 7);
    if (mode & 0026) {
        *perr = apr_psprintf(p, "keys file '%s' has mode %04o: it must not "
                             "be %s; run 'chmod 640 %s'", path, mode,
                             (mode & 0006) == 0006 ? "readable or writable "
                                                     "by others"
                             : (mode & 0004) ? "readable by others"
                             : (mode & 0002) ? "writable by others"
                             : "writable by its group", path);
        return APR_EACCES;
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Lookup and accessors                                               */
/* ------------------------------------------------------------------ */

const ark_key_t *ark_keys_lookup_hash(const ark_keyring_t *ring,
                                      const unsigned char *hash)
{
    const keys_slot_t *found;

    if (!ring || !hash) {
        return NULL;
    }
    found = keys_index_find(ring, hash, 0);
    return found ? &found->entry->key : NULL;
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

const ark_key_t *ark_keys_lookup_ex(const ark_keyring_t *ring,
                                    const char *secret, apr_size_t len,
                                    int *pprevious)
{
    unsigned char digest[ARK_KEY_HASH_LEN];
    const keys_slot_t *found;

    if (pprevious) {
        *pprevious = 0;
    }
    if (!ring || !secret || !keys_digest(ring->md, digest, secret, len)) {
        return NULL;
    }
    found = keys_index_find(ring, digest, 1);
    if (!found) {
        return NULL;
    }
    if (pprevious) {
        *pprevious = found->previous;
    }
    return &found->entry->key;
}

const ark_tenant_t *ark_keys_tenant(const ark_keyring_t *ring, const char *name)
{
    if (!ring || !name) {
        return NULL;
    }
    return apr_hash_get(ring->tenant_by_name, name, APR_HASH_KEY_STRING);
}

int ark_keys_tenant_count(const ark_keyring_t *ring)
{
    return ring ? ring->tenants->nelts : 0;
}

const ark_tenant_t *ark_keys_tenant_at(const ark_keyring_t *ring, int i)
{
    if (!ring || i < 0 || i >= ring->tenants->nelts) {
        return NULL;
    }
    return APR_ARRAY_IDX(ring->tenants, i, const ark_tenant_t *);
}

const ark_provider_limit_t *ark_key_provider_limit(const ark_key_t *key,
                                                   const char *provider)
{
    if (!key || !provider) {
        return NULL;
    }
    return keys_plimit_find(key->provider_limits, provider, strlen(provider));
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

/* " rpm=N tpm=N concurrency=N budget_day=X budget_month=X", the limits
 * that are set, onto parts. */
static void keys_limits_push(apr_array_header_t *parts, const ark_limits_t *l,
                             apr_pool_t *p)
{
    if (l->rpm) {
        APR_ARRAY_PUSH(parts, const char *) =
            apr_psprintf(p, " rpm=%" APR_INT64_T_FMT, l->rpm);
    }
    if (l->tpm) {
        APR_ARRAY_PUSH(parts, const char *) =
            apr_psprintf(p, " tpm=%" APR_INT64_T_FMT, l->tpm);
    }
    if (l->concurrency) {
        APR_ARRAY_PUSH(parts, const char *) =
            apr_psprintf(p, " concurrency=%" APR_INT64_T_FMT, l->concurrency);
    }
    if (l->budget_day) {
        APR_ARRAY_PUSH(parts, const char *) = apr_pstrcat(
            p, " budget_day=", ark_money_format(l->budget_day, p), NULL);
    }
    if (l->budget_month) {
        APR_ARRAY_PUSH(parts, const char *) = apr_pstrcat(
            p, " budget_month=", ark_money_format(l->budget_month, p), NULL);
    }
}

static const char *keys_tenant_line(const ark_tenant_t *t, apr_pool_t *p)
{
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(const char *));

    APR_ARRAY_PUSH(parts, const char *) =
        apr_pstrcat(p, KEYS_TENANT_PREFIX, t->name, NULL);
    keys_limits_push(parts, &t->limits, p);
    APR_ARRAY_PUSH(parts, const char *) = "\n";
    return apr_array_pstrcat(p, parts, '\0');
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
    keys_limits_push(parts, &k->limits, p);
    for (i = 0; k->provider_limits && i < k->provider_limits->nelts; i++) {
        const ark_provider_limit_t *pl =
            &APR_ARRAY_IDX(k->provider_limits, i, ark_provider_limit_t);

        if (pl->rpm) {
            APR_ARRAY_PUSH(parts, const char *) = apr_psprintf(
                p, " rpm@%s=%" APR_INT64_T_FMT, pl->provider, pl->rpm);
        }
        if (pl->tpm) {
            APR_ARRAY_PUSH(parts, const char *) = apr_psprintf(
                p, " tpm@%s=%" APR_INT64_T_FMT, pl->provider, pl->tpm);
        }
    }
    if (k->has_previous) {
        const char *until = NULL;

        keys_hex(hex, k->previous_hash, ARK_KEY_HASH_LEN);
        if (ark_keys_timestamp_make(&until, k->previous_until, p) !=
            APR_SUCCESS) {
            until = "1970-01-01T00:00:00Z";
        }
        APR_ARRAY_PUSH(parts, const char *) =
            apr_pstrcat(p, " previous=" KEYS_HASH_PREFIX, hex,
                        " previous_until=", until, NULL);
    }
    APR_ARRAY_PUSH(parts, const char *) = "\n";
    return apr_array_pstrcat(p, parts, '\0');
}

apr_status_t ark_keys_format(const char **ptext, const ark_keyring_t *ring,
                             apr_pool_t *p)
{
    apr_array_header_t *parts;
    const keys_line_t *l;
    const char *body, *s;
    int i;

    *ptext = NULL;
    if (!ring) {
        return APR_EINVAL;
    }
    parts = apr_array_make(p, 3 * ring->lines->nelts + 2, sizeof(const char *));
    for (i = 0; i < ring->lines->nelts; i++) {
        l = APR_ARRAY_IDX(ring->lines, i, const keys_line_t *);
        APR_ARRAY_PUSH(parts, const char *) = l->lead;
        APR_ARRAY_PUSH(parts, const char *) = l->doc;
        APR_ARRAY_PUSH(parts, const char *) =
            l->entry ? keys_line(&l->entry->key, p)
                     : keys_tenant_line(l->tenant, p);
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

/* Checks limits as the parser would (0 means none). NULL if valid. */
static const char *keys_limits_check(const ark_limits_t *l)
{
    if (l->rpm < 0 || l->rpm > KEYS_LIMIT_MAX) {
        return "invalid rpm (expected 0 for none, or " KEYS_LIMIT_RULE ")";
    }
    if (l->tpm < 0 || l->tpm > KEYS_LIMIT_MAX) {
        return "invalid tpm (expected 0 for none, or " KEYS_LIMIT_RULE ")";
    }
    if (l->concurrency < 0 || l->concurrency > KEYS_LIMIT_MAX) {
        return "invalid concurrency (expected 0 for none, or " KEYS_LIMIT_RULE
               ")";
    }
    if (l->budget_day < 0 || l->budget_day > ARK_MONEY_MAX) {
        return "invalid budget_day (expected 0 for none, or at most "
               "1000000000 currency units)";
    }
    if (l->budget_month < 0 || l->budget_month > ARK_MONEY_MAX) {
        return "invalid budget_month (expected 0 for none, or at most "
               "1000000000 currency units)";
    }
    return NULL;
}

/* Checks a caller's provider limits (NULL and empty are valid). Entries
 * with neither limit set do not count. NULL if valid. */
static const char *keys_plimits_check(const apr_array_header_t *pls,
                                      apr_pool_t *p)
{
    const ark_provider_limit_t *pl, *other;
    int i, j, n = 0;

    for (i = 0; pls && i < pls->nelts; i++) {
        pl = &APR_ARRAY_IDX(pls, i, ark_provider_limit_t);
        if (!pl->provider ||
            !keys_provider_validn(pl->provider, strlen(pl->provider))) {
            return apr_psprintf(p,
                                "provider limit %d: invalid provider name "
                                "(expected " KEYS_PROVIDER_RULE ")",
                                i + 1);
        }
        if (pl->rpm < 0 || pl->rpm > KEYS_LIMIT_MAX || pl->tpm < 0 ||
            pl->tpm > KEYS_LIMIT_MAX) {
            return apr_psprintf(p,
                                "provider limit %d: invalid rpm or tpm "
                                "(expected 0 for none, or " KEYS_LIMIT_RULE ")",
                                i + 1);
        }
        for (j = 0; j < i; j++) {
            other = &APR_ARRAY_IDX(pls, j, ark_provider_limit_t);
            if (!strcmp(other->provider, pl->provider)) {
                return apr_psprintf(p,
                                    "provider limit %d repeats the provider "
                                    "of provider limit %d",
                                    i + 1, j + 1);
            }
        }
        n += (pl->rpm || pl->tpm);
    }
    if (n > ARK_KEY_PROVIDER_LIMITS_MAX) {
        return apr_psprintf(p, "limits towards more than %d providers",
                            ARK_KEY_PROVIDER_LIMITS_MAX);
    }
    return NULL;
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
    if (which & ARK_KEY_SET_LIMITS) {
        m = keys_limits_check(&key->limits);
        if (!m) {
            m = keys_plimits_check(key->provider_limits, p);
        }
        if (m) {
            *perr = m;
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

/* The ring's copy of provider limits, without entries that set neither
 * limit; NULL for none. */
static apr_array_header_t *keys_plimits_copy(const apr_array_header_t *pls,
                                             apr_pool_t *p)
{
    apr_array_header_t *out = NULL;
    const ark_provider_limit_t *pl;
    ark_provider_limit_t *c;
    int i;

    for (i = 0; pls && i < pls->nelts; i++) {
        pl = &APR_ARRAY_IDX(pls, i, ark_provider_limit_t);
        if (!pl->rpm && !pl->tpm) {
            continue;
        }
        if (!out) {
            out = apr_array_make(p, pls->nelts, sizeof(ark_provider_limit_t));
        }
        c = apr_array_push(out);
        c->provider = apr_pstrdup(p, pl->provider);
        c->rpm = pl->rpm;
        c->tpm = pl->tpm;
    }
    return out;
}

static int keys_limits_equal(const ark_limits_t *a, const ark_limits_t *b)
{
    return a->rpm == b->rpm && a->tpm == b->tpm &&
           a->concurrency == b->concurrency && a->budget_day == b->budget_day &&
           a->budget_month == b->budget_month;
}

/* Same provider limits, whatever their order; entries setting neither
 * limit do not count. */
static int keys_plimits_equal(apr_array_header_t *a, apr_array_header_t *b)
{
    const ark_provider_limit_t *x, *y;
    int i, na = 0, nb = 0;

    for (i = 0; a && i < a->nelts; i++) {
        x = &APR_ARRAY_IDX(a, i, ark_provider_limit_t);
        if (!x->rpm && !x->tpm) {
            continue;
        }
        na++;
        y = keys_plimit_find(b, x->provider, strlen(x->provider));
        if (!y || y->rpm != x->rpm || y->tpm != x->tpm) {
            return 0;
        }
    }
    for (i = 0; b && i < b->nelts; i++) {
        y = &APR_ARRAY_IDX(b, i, ark_provider_limit_t);
        nb += (y->rpm || y->tpm);
    }
    return na == nb;
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
     ARK_KEY_SET_TAGS | ARK_KEY_SET_LIMITS)

apr_status_t ark_keys_add(const ark_key_t **padded, ark_keyring_t *ring,
                          const ark_key_t *key, const char **perr)
{
    apr_pool_t *p;
    keys_entry_t *e;
    const keys_slot_t *other;
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
    other = keys_index_find(ring, key->hash, 1);
    if (other) {
        *perr = apr_psprintf(p, "key '%s' already has this %shash",
                             other->entry->key.name,
                             other->previous ? "previous " : "");
        return APR_EEXIST;
    }
    if (key->has_previous) {
        if (!memcmp(key->previous_hash, key->hash, ARK_KEY_HASH_LEN)) {
            *perr = "the previous hash is the key's own current hash";
            return APR_EINVAL;
        }
        other = keys_index_find(ring, key->previous_hash, 1);
        if (other) {
            *perr = apr_psprintf(p,
                                 "key '%s' already has the previous hash as "
                                 "its %shash",
                                 other->entry->key.name,
                                 other->previous ? "previous " : "");
            return APR_EEXIST;
        }
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
    e->key.limits = key->limits;
    e->key.provider_limits = keys_plimits_copy(key->provider_limits, p);
    if (key->has_previous) {
        e->key.has_previous = 1;
        memcpy(e->key.previous_hash, key->previous_hash, ARK_KEY_HASH_LEN);
        /* Whole seconds, as the file keeps it. */
        e->key.previous_until =
            apr_time_from_sec(apr_time_sec(key->previous_until));
    }
    keys_append(ring, e, "", "");
    if (padded) {
        *padded = &e->key;
    }
    return APR_SUCCESS;
}

/* The entry of the key called name, or NULL with *perr saying so (the
 * name is quoted only when it is a valid key name). */
static keys_entry_t *keys_entry_named(const ark_keyring_t *ring,
                                      const char *name, const char **perr)
{
    keys_entry_t *e = apr_hash_get(ring->by_name, name,
                                   APR_HASH_KEY_STRING);

    if (!e) {
        *perr = ark_keys_name_valid(name)
                    ? apr_psprintf(ring->pool, "no key named '%s'", name)
                    : "no key of that name";
    }
    return e;
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
    e = keys_entry_named(ring, name, perr);
    if (!e) {
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
    if ((which & ARK_KEY_SET_LIMITS) &&
        (!keys_limits_equal(&k->limits, &attrs->limits) ||
         !keys_plimits_equal(k->provider_limits, attrs->provider_limits))) {
        k->limits = attrs->limits;
        k->provider_limits =
            keys_plimits_copy(attrs->provider_limits, ring->pool);
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
    keys_entry_t *e;
    int i;

    if (!ring || !name) {
        return APR_ENOENT;
    }
    e = apr_hash_get(ring->by_name, name, APR_HASH_KEY_STRING);
    if (!e) {
        return APR_ENOENT;
    }
    /* Free-standing lines above the key stay; its own comments go. */
    i = keys_line_find(ring, e);
    if (i >= 0) {
        keys_line_drop(ring, i);
    }
    keys_array_remove(ring->entries, e);
    apr_hash_set(ring->by_name, name, APR_HASH_KEY_STRING, NULL);
    keys_index_unlink(ring, e);
    return APR_SUCCESS;
}

apr_status_t ark_keys_rotate(ark_keyring_t *ring, const char *name,
                             const unsigned char *new_hash,
                             const char *new_hint, apr_time_t previous_until,
                             const char **perr)
{
    keys_entry_t *e;
    const keys_slot_t *other;

    *perr = NULL;
    if (!ring || !name || !new_hash) {
        *perr = "no keyring, name or hash";
        return APR_EINVAL;
    }
    e = keys_entry_named(ring, name, perr);
    if (!e) {
        return APR_ENOENT;
    }
    if (new_hint && !keys_hint_validn(new_hint, strlen(new_hint))) {
        *perr = "invalid hint (expected the last 4 characters of the secret)";
        return APR_EINVAL;
    }
    other = keys_index_find(ring, new_hash, 1);
    if (other) {
        *perr = apr_psprintf(ring->pool, "key '%s' already has this %shash",
                             other->entry->key.name,
                             other->previous ? "previous " : "");
        return APR_EEXIST;
    }
    keys_index_unlink(ring, e);
    memcpy(e->key.previous_hash, e->key.hash, ARK_KEY_HASH_LEN);
    e->key.has_previous = 1;
    /* Whole seconds, as the file keeps it. */
    e->key.previous_until = apr_time_from_sec(apr_time_sec(previous_until));
    memcpy(e->key.hash, new_hash, ARK_KEY_HASH_LEN);
    e->key.hint = new_hint ? apr_pstrdup(ring->pool, new_hint) : NULL;
    keys_index_insert(ring, e);
    return APR_SUCCESS;
}

apr_status_t ark_keys_set_tenant(ark_keyring_t *ring, const char *name,
                                 const ark_limits_t *limits, const char **perr)
{
    static const ark_limits_t none;
    ark_tenant_t *t;

    *perr = NULL;
    if (!ring || !limits) {
        *perr = "no keyring or limits";
        return APR_EINVAL;
    }
    if (!ark_keys_name_valid(name)) {
        *perr = "invalid tenant (expected " KEYS_NAME_RULE ")";
        return APR_EINVAL;
    }
    *perr = keys_limits_check(limits);
    if (*perr) {
        return APR_EINVAL;
    }
    t = apr_hash_get(ring->tenant_by_name, name, APR_HASH_KEY_STRING);
    if (keys_limits_equal(limits, &none)) {
        if (t && keys_line_find(ring, t) >= 0) {
            keys_line_drop(ring, keys_line_find(ring, t));
            keys_array_remove(ring->tenants, t);
            apr_hash_set(ring->tenant_by_name, name, APR_HASH_KEY_STRING, NULL);
        }
        return APR_SUCCESS;
    }
    if (!t) {
        t = apr_pcalloc(ring->pool, sizeof(*t));
        t->name = apr_pstrdup(ring->pool, name);
        t->line = 0;
        keys_append_tenant(ring, t, "", "");
    }
    t->limits = *limits;
    return APR_SUCCESS;
}
