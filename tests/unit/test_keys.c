/* Unit tests for ark_keys.c: the keys file parser and its error messages,
 * the priority and tags attributes, digest lookup, the model ACL, secret
 * generation, hashing, the writer (format -> parse round trips that keep
 * comments) and the CLI-only edit functions. Each test gets a fresh APR pool
 * from keys_setup(). Test names are numbered by area: 1x parsing, 2x parse
 * errors, 3x lookup and ACL, 4x secrets and hashes, 5x writing and editing, 6x
 * loading and scale, 7x governance (limits, budgets, tenant lines, previous
 * secrets and rotation).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "ark_keys.h"
#include "ark_limit.h"
#include "ark_route.h"
#include "ark_testutil.h"

/* SHA-256("abc") and SHA-256(""), FIPS 180-2 / well-known vectors. */
#define HEX_ABC                                                                \
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define HEX_EMPTY                                                              \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define SCALE_KEYS 10000

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

/* "sha256:<hex>" for a secret. */
static const char *hash_field(const char *secret, apr_pool_t *p)
{
    unsigned char h[ARK_KEY_HASH_LEN];
    char hex[2 * ARK_KEY_HASH_LEN + 1];
    int i;

    ark_keys_hash(h, secret, strlen(secret));
    for (i = 0; i < ARK_KEY_HASH_LEN; i++) {
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    }
    return apr_pstrcat(p, "sha256:", hex, NULL);
}

static ark_keyring_t *parse_ok(const char *text, apr_pool_t *p)
{
    ark_keyring_t *ring = NULL;
    const char *err = NULL;
    apr_status_t rv;

    rv = ark_keys_parse(&ring, text, strlen(text), &err, p);
    if (rv != APR_SUCCESS) {
        print_error("unexpected parse error: %s\n", err ? err : "(none)");
    }
    assert_int_equal(rv, APR_SUCCESS);
    assert_null(err);
    assert_non_null(ring);
    return ring;
}

/* Parses text that must fail; returns the message. */
static const char *parse_fail(const char *text, apr_pool_t *p)
{
    ark_keyring_t *ring = (ark_keyring_t *)&ring;
    const char *err = NULL;
    apr_status_t rv;

    rv = ark_keys_parse(&ring, text, strlen(text), &err, p);
    assert_int_equal(rv, APR_EINVAL);
    assert_null(ring);
    assert_non_null(err);
    return err;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) {
        print_error("'%s' does not contain '%s'\n", haystack, needle);
        fail();
    }
}

static void assert_lacks(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle)) {
        print_error("'%s' must not contain '%s'\n", haystack, needle);
        fail();
    }
}

static const char *model_at(const ark_key_t *k, int i)
{
    return APR_ARRAY_IDX(k->models, i, const char *);
}

static const ark_tag_t *tag_at(const apr_array_header_t *tags, int i)
{
    return &APR_ARRAY_IDX(tags, i, ark_tag_t);
}

static void assert_tag(const apr_array_header_t *tags, int i, const char *key,
                       const char *value)
{
    assert_non_null(tags);
    assert_true(i < tags->nelts);
    assert_string_equal(tag_at(tags, i)->key, key);
    assert_string_equal(tag_at(tags, i)->value, value);
}

/* "x" repeated n times. */
static const char *repeat(char c, int n, apr_pool_t *p)
{
    char *s = apr_palloc(p, (apr_size_t)n + 1);

    memset(s, c, (apr_size_t)n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------------ */
/* 1x parsing valid files                                             */
/* ------------------------------------------------------------------ */

static void test_10_parse_defaults(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;
    unsigned char h[ARK_KEY_HASH_LEN];

    ring =
        parse_ok(apr_pstrcat(p, "alice ", hash_field("s1", p), "\n", NULL), p);
    assert_int_equal(ark_keys_count(ring), 1);
    k = ark_keys_at(ring, 0);
    assert_non_null(k);
    assert_string_equal(k->name, "alice");
    assert_string_equal(k->tenant, "alice");
    assert_true(k->all_models);
    assert_non_null(k->models);
    assert_int_equal(k->models->nelts, 0);
    assert_int_equal(k->priority, ARK_PRIO_NORMAL);
    assert_null(k->tags);
    assert_true(k->enabled);
    assert_null(k->created);
    assert_null(k->hint);
    assert_int_equal(k->line, 1);
    ark_keys_hash(h, "s1", 2);
    assert_memory_equal(k->hash, h, ARK_KEY_HASH_LEN);
}

static void test_11_parse_all_attributes(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;

    /* Attributes in an unusual order, tabs and runs of spaces. */
    ring = parse_ok(apr_pstrcat(p, "  bob.team@acme_1-x\t", hash_field("s", p),
                                "  hint=ab-_ state=revoked\t"
                                "models=gpt-4o,claude:3.5/sonnet,m@v1 "
                                "created=2026-11-27T11:00:00Z tenant=acme\n",
                                NULL),
                    p);
    k = ark_keys_at(ring, 0);
    assert_string_equal(k->name, "bob.team@acme_1-x");
    assert_string_equal(k->tenant, "acme");
    assert_false(k->all_models);
    assert_int_equal(k->models->nelts, 3);
    assert_string_equal(model_at(k, 0), "gpt-4o");
    assert_string_equal(model_at(k, 1), "claude:3.5/sonnet");
    assert_string_equal(model_at(k, 2), "m@v1");
    assert_false(k->enabled);
    assert_string_equal(k->created, "2026-11-27T11:00:00Z");
    assert_string_equal(k->hint, "ab-_");

    ring = parse_ok(apr_pstrcat(p, "c ", hash_field("s", p),
                                " state=enabled models=*\n", NULL),
                    p);
    k = ark_keys_at(ring, 0);
    assert_true(k->enabled);
    assert_true(k->all_models);
    assert_int_equal(k->models->nelts, 0);
}

static void test_12_parse_crlf_comments_blank(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const char *text;

    text = apr_pstrcat(p,
                       "\xEF\xBB\xBF# header\r\n"
                       "\r\n"
                       "   # indented comment\r\n"
                       "a ",
                       hash_field("a", p),
                       " tenant=t\r\n"
                       " \t \r\n"
                       "# about b\n"
                       "b ",
                       hash_field("b", p),
                       "\r\n"
                       "#trailing comment\n"
                       "c ",
                       hash_field("c", p), " models=x", /* no EOL */
                       NULL);
    ring = parse_ok(text, p);
    assert_int_equal(ark_keys_count(ring), 3);
    assert_string_equal(ark_keys_at(ring, 0)->name, "a");
    assert_string_equal(ark_keys_at(ring, 0)->tenant, "t");
    assert_int_equal(ark_keys_at(ring, 0)->line, 4);
    assert_int_equal(ark_keys_at(ring, 1)->line, 7);
    assert_int_equal(ark_keys_at(ring, 2)->line, 9);
    assert_string_equal(model_at(ark_keys_at(ring, 2), 0), "x");
    assert_non_null(ark_keys_lookup(ring, "b", 1));
}

static void test_13_parse_empty_and_comment_only(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;

    ring = parse_ok("", p);
    assert_int_equal(ark_keys_count(ring), 0);
    assert_null(ark_keys_at(ring, 0));
    assert_null(ark_keys_lookup(ring, "x", 1));
    ring = parse_ok("# nothing yet\n\n\n# really\n", p);
    assert_int_equal(ark_keys_count(ring), 0);
}

static void test_14_parse_uses_len_not_nul(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const char *err, *line;
    char *buf;
    apr_size_t n;

    line = apr_pstrcat(p, "a ", hash_field("a", p), NULL);
    n = strlen(line);
    buf = apr_pstrcat(p, line, " bogus", NULL); /* beyond len */
    assert_int_equal(ark_keys_parse(&ring, buf, n, &err, p), APR_SUCCESS);
    assert_int_equal(ark_keys_count(ring), 1);
    assert_true(ark_keys_at(ring, 0)->all_models);
}

static void test_15_parse_priority_and_tags(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;
    apr_array_header_t *eu_official, *us_community, *eu_only;
    const char *err;

    ring = parse_ok(
        apr_pstrcat(p, "a ", hash_field("a", p),
                    " priority=high tags=region=eu,region=us,tier=official\n",
                    "b ", hash_field("b", p),
                    "\ttags=x.y_z-1:a/b=V.1_-:/\tpriority=low\n", "c ",
                    hash_field("c", p), " priority=normal\n", NULL),
        p);
    k = ark_keys_find_name(ring, "a");
    assert_int_equal(k->priority, ARK_PRIO_HIGH);
    assert_int_equal(k->tags->nelts, 3);
    assert_tag(k->tags, 0, "region", "eu");
    assert_tag(k->tags, 1, "region", "us");
    assert_tag(k->tags, 2, "tier", "official");
    /* Other attributes keep their defaults. */
    assert_string_equal(k->tenant, "a");
    assert_true(k->all_models);
    assert_true(k->enabled);

    k = ark_keys_find_name(ring, "b");
    assert_int_equal(k->priority, ARK_PRIO_LOW);
    assert_int_equal(k->tags->nelts, 1);
    assert_tag(k->tags, 0, "x.y_z-1:a/b", "V.1_-:/");

    k = ark_keys_find_name(ring, "c");
    assert_int_equal(k->priority, ARK_PRIO_NORMAL);
    assert_null(k->tags);

    /* The parsed requirements mean what the router says they mean:
     * region eu or us, and tier official. */
    k = ark_keys_find_name(ring, "a");
    assert_null(ark_tags_parse(&eu_official, "region=eu,tier=official", p));
    assert_null(ark_tags_parse(&us_community, "region=us,tier=community", p));
    assert_null(ark_tags_parse(&eu_only, "region=eu", p));
    assert_true(ark_tags_satisfy(eu_official, k->tags));
    assert_false(ark_tags_satisfy(us_community, k->tags));
    assert_false(ark_tags_satisfy(eu_only, k->tags));
    assert_false(ark_tags_satisfy(NULL, k->tags));
    assert_true(ark_tags_satisfy(eu_only, ark_keys_find_name(ring, "c")->tags));

    /* The public tags parser agrees with the router's on valid input. */
    assert_int_equal(ark_keys_tags_parse(&eu_only,
                                         "region=eu,region=us,"
                                         "tier=official",
                                         &err, p),
                     APR_SUCCESS);
    assert_null(err);
    assert_int_equal(eu_only->nelts, 3);
    assert_tag(eu_only, 1, "region", "us");
}

/* ------------------------------------------------------------------ */
/* 2x parse errors                                                    */
/* ------------------------------------------------------------------ */

typedef struct bad_case_t {
    const char *line;   /* "H" is replaced by a valid hash field */
    const char *expect; /* substring of the message */
} bad_case_t;

static const char *expand(const char *tmpl, apr_pool_t *p)
{
    const char *h = strstr(tmpl, " H");

    if (!h || (h[2] != ' ' && h[2] != '\0')) {
        return tmpl;
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, tmpl, (apr_size_t)(h - tmpl) + 1),
                       hash_field("x", p), h + 2, NULL);
}

static void test_20_parse_errors(void **state)
{
    static const bad_case_t cases[] = {
        {"al!ce H", "line 1: invalid key name"},
        {"a\xC3\xA9 H", "line 1: invalid key name"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa H",
         "line 1: invalid key name"},
        {"alice", "line 1: missing 'sha256:<hash>'"},
        {"alice sha1:abc", "expected 'sha256:'"},
        {"alice SHA256:" HEX_ABC, "expected 'sha256:'"},
        {"alice sha256:" HEX_ABC "0", "hash has 65 hex digits"},
        {"alice sha256:abc", "hash has 3 hex digits, expected 64"},
        {"alice sha256:", "hash has 0 hex digits"},
        {"alice sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB4"
         "10FF61F20015AD",
         "not a lowercase hex digit"},
        {"alice sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb41"
         "0ff61f20015ad",
         "not a lowercase hex digit"},
        {"alice H modles=*",
         "line 1: unknown attribute 'modles' (expected "
         "tenant, models, priority, tags, state, created, hint, rpm, tpm, "
         "concurrency, budget_day, budget_month, rpm@<provider>, "
         "tpm@<provider>, previous, previous_until)"},
        {"alice H tag=region=eu", "unknown attribute 'tag'"},
        {"alice H Priority=high", "unknown attribute 'Priority'"},
        {"alice H Tenant=x", "unknown attribute 'Tenant'"},
        {"alice H =x", "unknown attribute (expected"},
        {"alice H tenant=a tenant=b", "attribute 'tenant' given twice"},
        {"alice H models=* models=*", "attribute 'models' given twice"},
        {"alice H state=revoked state=revoked", "'state' given twice"},
        {"alice H tenant=", "attribute 'tenant' has an empty value"},
        {"alice H tenant=a!b", "invalid tenant"},
        {"alice H state=disabled", "invalid state 'disabled' (expected "
                                   "enabled or revoked)"},
        {"alice H state=Enabled", "invalid state 'Enabled'"},
        {"alice H models=", "attribute 'models' has an empty value"},
        {"alice H models=gpt-4o,gpt!4", "models: model alias 2 has a "
                                        "character outside"},
        {"alice H models=a,,b", "model alias 2 in the list is empty"},
        {"alice H models=a,", "model alias 2 in the list is empty"},
        {"alice H models=*,a", "'*' cannot be combined"},
        {"alice H models=a,*", "'*' cannot be combined"},
        {"alice H created=2026-11-27", "invalid created time"},
        {"alice H created=2026-11-27T11:00:00", "invalid created time"},
        {"alice H created=2026-11-27T11:00:00+00:00", "invalid created time"},
        {"alice H created=2026-13-01T00:00:00Z", "invalid created time"},
        {"alice H created=2026-02-29T00:00:00Z", "invalid created time"},
        {"alice H created=2026-04-31T00:00:00Z", "invalid created time"},
        {"alice H created=2026-01-01T24:00:00Z", "invalid created time"},
        {"alice H hint=abc", "invalid hint"},
        {"alice H hint=abcde", "invalid hint"},
        {"alice H hint=ab+c", "invalid hint"},
        {"alice H junk", "found a word without '='"},
        {"alice H tenant=a\r x", "invalid tenant"},
        /* priority= */
        {"alice H priority=", "attribute 'priority' has an empty value"},
        {"alice H priority=urgent", "line 1: invalid priority 'urgent' "
                                    "(expected high, normal or low)"},
        {"alice H priority=High", "invalid priority 'High'"},
        {"alice H priority=high,low", "invalid priority (expected"},
        {"alice H priority=0", "invalid priority '0'"},
        {"alice H priority=high priority=high",
         "attribute 'priority' given twice"},
        {"alice H priority=low tenant=t priority=high",
         "attribute 'priority' given twice"},
        /* tags= */
        {"alice H tags=", "attribute 'tags' has an empty value"},
        {"alice H tags=region", "line 1: tags: tag 1 is not key=value"},
        {"alice H tags=region=eu,tier", "tags: tag 2 is not key=value"},
        {"alice H tags==eu", "tags: tag 1 has an empty key"},
        {"alice H tags=region=", "tags: tag 1 has an empty value"},
        {"alice H tags=region=eu,,tier=x", "tags: tag 2 in the list is empty"},
        {"alice H tags=,region=eu", "tags: tag 1 in the list is empty"},
        {"alice H tags=region=eu,", "tags: tag 2 in the list is empty"},
        {"alice H tags=,", "tags: tag 1 in the list is empty"},
        {"alice H tags=region=e!u", "tags: tag 1 has a character outside "
                                    "A-Z a-z 0-9 . _ : / -"},
        {"alice H tags=re@gion=eu", "tag 1 has a character outside"},
        {"alice H tags=region=eu=x", "tag 1 has a character outside"},
        {"alice H tags=region=\xC3\xA9u", "tag 1 has a character outside"},
        {"alice H tags=region=eu,tier=x,region=eu",
         "tags: tag 3 repeats tag 1"},
        {"alice H tags=region=eu tags=tier=x", "attribute 'tags' given twice"},
        {NULL, NULL}};
    apr_pool_t *p = *state;
    const bad_case_t *c;
    const char *err;

    for (c = cases; c->line; c++) {
        err = parse_fail(expand(c->line, p), p);
        if (!strstr(err, c->expect)) {
            print_error("line '%s': got '%s', expected '%s'\n", c->line, err,
                        c->expect);
            fail();
        }
    }
}

static void test_21_parse_error_line_numbers(void **state)
{
    apr_pool_t *p = *state;
    const char *err;

    err = parse_fail(apr_pstrcat(p, "# 1\n\n# 3\n", "a ", hash_field("a", p),
                                 "\n\r\n# 6\n", "b ", hash_field("b", p),
                                 " modles=x\n", NULL),
                     p);
    assert_string_equal(err, "line 7: unknown attribute 'modles' (expected "
                             "tenant, models, priority, tags, state, "
                             "created, hint, rpm, tpm, concurrency, "
                             "budget_day, budget_month, rpm@<provider>, "
                             "tpm@<provider>, previous, previous_until)");
}

static void test_22_parse_duplicates(void **state)
{
    apr_pool_t *p = *state;
    const char *err;

    err = parse_fail(apr_pstrcat(p, "alice ", hash_field("a", p), "\n", "# x\n",
                                 "alice ", hash_field("b", p), "\n", NULL),
                     p);
    assert_string_equal(err, "line 3: duplicate key name 'alice' (first on "
                             "line 1)");

    /* The same secret under two names would make identity ambiguous. */
    err = parse_fail(apr_pstrcat(p, "alice ", hash_field("a", p), "\n", "bob ",
                                 hash_field("a", p), "\n", NULL),
                     p);
    assert_contains(err, "line 2: same hash as key 'alice' (line 1)");

    /* Names are case-sensitive, so these are two keys. */
    parse_ok(apr_pstrcat(p, "alice ", hash_field("a", p), "\n", "Alice ",
                         hash_field("b", p), "\n", NULL),
             p);
}

static void test_23_parse_nul_byte(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const char *err;
    static const char text[] = "# ok\nal\0ice sha256:00\n";

    assert_int_equal(ark_keys_parse(&ring, text, sizeof(text) - 1, &err, p),
                     APR_EINVAL);
    assert_string_equal(err, "line 2: contains a NUL byte");
}

/* Messages must not repeat secrets, hashes or whole lines. */
static void test_24_parse_errors_do_not_leak(void **state)
{
    apr_pool_t *p = *state;
    const char *secret, *hash, *err;

    assert_int_equal(ark_keys_secret_make(&secret, p), APR_SUCCESS);
    hash = hash_field(secret, p) + 7;

    /* Secret pasted where the hash belongs. */
    err = parse_fail(apr_pstrcat(p, "alice ", secret, "\n", NULL), p);
    assert_lacks(err, secret + 7);
    /* Secret pasted as an extra word, and as an attribute name/value. */
    err = parse_fail(
        apr_pstrcat(p, "alice sha256:", hash, " ", secret, "\n", NULL), p);
    assert_lacks(err, secret + 7);
    assert_lacks(err, hash);
    err = parse_fail(
        apr_pstrcat(p, "alice sha256:", hash, " ", secret, "=x\n", NULL), p);
    assert_lacks(err, secret + 7);
    assert_contains(err, "unknown attribute (expected");
    err = parse_fail(
        apr_pstrcat(p, "alice sha256:", hash, " state=", secret, "\n", NULL),
        p);
    assert_lacks(err, secret + 7);
    err = parse_fail(
        apr_pstrcat(p, "alice sha256:", hash, " hint=", secret, "\n", NULL), p);
    assert_lacks(err, secret + 7);
    /* A hash one digit short: only its length is reported. */
    err = parse_fail(
        apr_pstrcat(p, "alice sha256:", apr_pstrndup(p, hash, 63), "\n", NULL),
        p);
    assert_lacks(err, apr_pstrndup(p, hash, 16));
    /* A bad name is not quoted. */
    err = parse_fail(apr_pstrcat(p, secret, "! sha256:", hash, "\n", NULL), p);
    assert_lacks(err, secret + 7);
    /* Nor a secret pasted as a priority or into a tags list, whatever
     * is wrong with the tag. */
    err = parse_fail(
        apr_pstrcat(p, "alice sha256:", hash, " priority=", secret, "\n", NULL),
        p);
    assert_lacks(err, secret + 7);
    assert_contains(err, "invalid priority (expected");
    err = parse_fail(
        apr_pstrcat(p, "alice sha256:", hash, " tags=", secret, "\n", NULL), p);
    assert_lacks(err, secret + 7);
    assert_contains(err, "tag 1 is not key=value");
    err = parse_fail(
        apr_pstrcat(p, "alice sha256:", hash, " tags=k=", secret, "!\n", NULL),
        p);
    assert_lacks(err, secret + 7);
    err = parse_fail(apr_pstrcat(p, "alice sha256:", hash, " tags=k=", secret,
                                 ",k=", secret, "\n", NULL),
                     p);
    assert_lacks(err, secret + 7);
    assert_contains(err, "tag 2 repeats tag 1");
    err = parse_fail(apr_pstrcat(p, "alice sha256:", hash, " tags=k=", secret,
                                 ",", secret, "\n", NULL),
                     p);
    assert_lacks(err, secret + 7);
}

/* Lengths and counts at and beyond their limits. */
static void test_25_tags_limits(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *tags, *many;
    const char *err, *at, *over, *spec;
    int i;

    at = repeat('k', ARK_KEY_TAG_MAX, p);
    over = repeat('k', ARK_KEY_TAG_MAX + 1, p);
    assert_int_equal(
        ark_keys_tags_parse(&tags, apr_pstrcat(p, at, "=", at, NULL), &err, p),
        APR_SUCCESS);
    assert_int_equal(
        ark_keys_tags_parse(&tags, apr_pstrcat(p, "a=b,", over, "=v", NULL),
                            &err, p),
        APR_EINVAL);
    assert_null(tags);
    assert_string_equal(err, "tag 2 has a key or value longer than 64 "
                             "characters");
    assert_lacks(err, over);
    assert_int_equal(
        ark_keys_tags_parse(&tags, apr_pstrcat(p, "k=", over, NULL), &err, p),
        APR_EINVAL);

    many = apr_array_make(p, ARK_KEY_TAGS_MAX + 1, sizeof(const char *));
    for (i = 0; i < ARK_KEY_TAGS_MAX; i++) {
        APR_ARRAY_PUSH(many, const char *) = apr_psprintf(p, "k=v%d", i);
    }
    spec = apr_array_pstrcat(p, many, ',');
    assert_int_equal(ark_keys_tags_parse(&tags, spec, &err, p), APR_SUCCESS);
    assert_int_equal(tags->nelts, ARK_KEY_TAGS_MAX);
    parse_ok(
        apr_pstrcat(p, "a ", hash_field("a", p), " tags=", spec, "\n", NULL),
        p);
    spec = apr_pstrcat(p, spec, ",k=last", NULL);
    assert_int_equal(ark_keys_tags_parse(&tags, spec, &err, p), APR_EINVAL);
    assert_string_equal(err, "more than 32 tags");
    err = parse_fail(
        apr_pstrcat(p, "a ", hash_field("a", p), " tags=", spec, "\n", NULL),
        p);
    assert_string_equal(err, "line 1: tags: more than 32 tags");

    /* "" is no requirements; NULL is a caller's mistake. */
    assert_int_equal(ark_keys_tags_parse(&tags, "", &err, p), APR_SUCCESS);
    assert_non_null(tags);
    assert_int_equal(tags->nelts, 0);
    assert_null(err);
    assert_int_equal(ark_keys_tags_parse(&tags, NULL, &err, p), APR_EINVAL);
    assert_non_null(err);
}

/* ------------------------------------------------------------------ */
/* 3x lookup and model ACL                                            */
/* ------------------------------------------------------------------ */

static void test_30_lookup(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;
    unsigned char h[ARK_KEY_HASH_LEN];
    const char *buf = "sk-ark-twoXYZ";

    ring = parse_ok(apr_pstrcat(p, "one ", hash_field("sk-ark-one", p), "\n",
                                "two ", hash_field("sk-ark-two", p),
                                " state=revoked\n", "three ",
                                hash_field("sk-ark-three", p), "\n", NULL),
                    p);
    k = ark_keys_lookup(ring, "sk-ark-one", 10);
    assert_non_null(k);
    assert_string_equal(k->name, "one");
    assert_true(k->enabled);

    /* Revoked keys are found; the caller tells revoked from unknown. */
    k = ark_keys_lookup(ring, buf, 10);
    assert_non_null(k);
    assert_string_equal(k->name, "two");
    assert_false(k->enabled);

    assert_null(ark_keys_lookup(ring, buf, 13));
    assert_null(ark_keys_lookup(ring, "sk-ark-four", 11));
    assert_null(ark_keys_lookup(ring, "sk-ark-on", 9));
    assert_null(ark_keys_lookup(ring, "", 0));
    assert_null(ark_keys_lookup(ring, NULL, 0));
    assert_null(ark_keys_lookup(NULL, "sk-ark-one", 10));

    ark_keys_hash(h, "sk-ark-three", 12);
    k = ark_keys_lookup_hash(ring, h);
    assert_non_null(k);
    assert_string_equal(k->name, "three");
    h[31] ^= 1;
    assert_null(ark_keys_lookup_hash(ring, h));

    assert_string_equal(ark_keys_find_name(ring, "two")->name, "two");
    assert_null(ark_keys_find_name(ring, "Two"));
    assert_null(ark_keys_find_name(ring, NULL));
    assert_int_equal(ark_keys_count(ring), 3);
    assert_int_equal(ark_keys_count(NULL), 0);
    assert_null(ark_keys_at(ring, -1));
    assert_null(ark_keys_at(ring, 3));
    assert_string_equal(ark_keys_at(ring, 2)->name, "three");
}

static void test_31_allows_model(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *all, *some;

    ring = parse_ok(apr_pstrcat(p, "all ", hash_field("a", p), "\n", "some ",
                                hash_field("b", p),
                                " models=gpt-4o,claude:sonnet\n", NULL),
                    p);
    all = ark_keys_find_name(ring, "all");
    some = ark_keys_find_name(ring, "some");

    assert_true(ark_key_allows_model(all, "gpt-4o"));
    assert_true(ark_key_allows_model(all, "anything/else"));
    assert_true(ark_key_allows_model(some, "gpt-4o"));
    assert_true(ark_key_allows_model(some, "claude:sonnet"));
    assert_false(ark_key_allows_model(some, "gpt-4"));
    assert_false(ark_key_allows_model(some, "gpt-4o-mini"));
    assert_false(ark_key_allows_model(some, "GPT-4o"));
    assert_false(ark_key_allows_model(some, "*"));
    assert_false(ark_key_allows_model(some, ""));
    assert_false(ark_key_allows_model(some, NULL));
    assert_false(ark_key_allows_model(NULL, "gpt-4o"));
    assert_false(ark_key_allows_model(all, NULL));
}

static void test_32_validators(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *models;
    const char *err;
    int all;

    (void)p;
    assert_true(ark_keys_name_valid("a"));
    assert_true(ark_keys_name_valid("A.z_0@9-"));
    assert_true(ark_keys_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                    "aaaaaaaaaaaaaaaaaaaaaaa")); /* 64 */
    assert_false(ark_keys_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                     "aaaaaaaaaaaaaaaaaaaaaaaaa")); /* 65 */
    assert_false(ark_keys_name_valid(""));
    assert_false(ark_keys_name_valid(NULL));
    assert_false(ark_keys_name_valid("a b"));
    assert_false(ark_keys_name_valid("a:b"));
    assert_false(ark_keys_name_valid("a/b"));
    assert_true(ark_keys_model_valid("a:b/c@d.e_f-g"));
    assert_false(ark_keys_model_valid("*"));
    assert_false(ark_keys_model_valid("a,b"));
    assert_false(ark_keys_model_valid(""));

    assert_int_equal(ark_keys_models_parse(&models, &all, "*", &err, p),
                     APR_SUCCESS);
    assert_true(all);
    assert_int_equal(models->nelts, 0);
    assert_int_equal(ark_keys_models_parse(&models, &all, "a,b:c", &err, p),
                     APR_SUCCESS);
    assert_false(all);
    assert_int_equal(models->nelts, 2);
    assert_int_equal(ark_keys_models_parse(&models, &all, "", &err, p),
                     APR_EINVAL);
    assert_non_null(err);
    assert_int_equal(ark_keys_models_parse(&models, &all, "**", &err, p),
                     APR_EINVAL);
}

/* ------------------------------------------------------------------ */
/* 4x secrets and hashes                                              */
/* ------------------------------------------------------------------ */

static void test_40_secret_format(void **state)
{
    apr_pool_t *p = *state;
    const char *s1, *s2;
    apr_size_t i;

    assert_int_equal(ark_keys_secret_make(&s1, p), APR_SUCCESS);
    assert_int_equal(ark_keys_secret_make(&s2, p), APR_SUCCESS);
    assert_int_equal(strlen(s1), ARK_KEY_SECRET_LEN);
    assert_int_equal(ARK_KEY_SECRET_LEN, 50);
    assert_int_equal(strncmp(s1, "sk-ark-", 7), 0);
    for (i = 7; i < strlen(s1); i++) {
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789-_",
                    s1[i])) {
            print_error("bad character '%c' in secret\n", s1[i]);
            fail();
        }
    }
    /* 32 bytes = 256 bits in 43 characters: the last carries 4 bits, so
     * its two low bits are zero (one of AEIMQUYcgkosw048). */
    assert_non_null(strchr("AEIMQUYcgkosw048", s1[ARK_KEY_SECRET_LEN - 1]));
    assert_string_not_equal(s1, s2);
    assert_true(ark_keys_secret_wellformed(s1, strlen(s1)));
    assert_false(ark_keys_secret_wellformed(s1, strlen(s1) - 1));
    assert_false(ark_keys_secret_wellformed("sk-ark-x", 8));
    assert_false(ark_keys_secret_wellformed(NULL, 0));
    assert_false(ark_keys_secret_wellformed(
        apr_pstrcat(p, "sk-ark-", apr_pstrndup(p, s1 + 8, 42), "=", NULL),
        ARK_KEY_SECRET_LEN));
    assert_false(ark_keys_secret_wellformed(
        apr_pstrcat(p, "sk-ARK-", s1 + 7, NULL), ARK_KEY_SECRET_LEN));
}

static void test_41_secret_uniqueness(void **state)
{
    apr_pool_t *p = *state;
    apr_hash_t *seen = apr_hash_make(p);
    const char *s;
    int i;

    for (i = 0; i < 1000; i++) {
        assert_int_equal(ark_keys_secret_make(&s, p), APR_SUCCESS);
        assert_null(apr_hash_get(seen, s, APR_HASH_KEY_STRING));
        apr_hash_set(seen, s, APR_HASH_KEY_STRING, s);
    }
}

static void test_42_hash_vectors(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(hash_field("abc", p), "sha256:" HEX_ABC);
    assert_string_equal(hash_field("", p), "sha256:" HEX_EMPTY);
}

static void test_43_timestamp(void **state)
{
    apr_pool_t *p = *state;
    const char *ts;

    assert_int_equal(
        ark_keys_timestamp_make(&ts, apr_time_from_sec(1795777200), p),
        APR_SUCCESS);
    assert_string_equal(ts, "2026-11-27T11:00:00Z");
    /* And it parses back as created=. */
    parse_ok(
        apr_pstrcat(p, "a ", hash_field("a", p), " created=", ts, "\n", NULL),
        p);
    parse_ok(apr_pstrcat(p, "a ", hash_field("a", p),
                         " created=2024-02-29T23:59:60Z\n", NULL),
             p);
}

/* ------------------------------------------------------------------ */
/* 5x writing and editing                                             */
/* ------------------------------------------------------------------ */

static void assert_same_key(const ark_key_t *a, const ark_key_t *b)
{
    int i;

    assert_string_equal(a->name, b->name);
    assert_string_equal(a->tenant, b->tenant);
    assert_memory_equal(a->hash, b->hash, ARK_KEY_HASH_LEN);
    assert_int_equal(a->all_models, b->all_models);
    assert_int_equal(a->models->nelts, b->models->nelts);
    for (i = 0; i < a->models->nelts; i++) {
        assert_string_equal(model_at(a, i), model_at(b, i));
    }
    assert_int_equal(a->priority, b->priority);
    assert_int_equal(a->tags ? a->tags->nelts : 0,
                     b->tags ? b->tags->nelts : 0);
    for (i = 0; a->tags && i < a->tags->nelts; i++) {
        assert_tag(b->tags, i, tag_at(a->tags, i)->key,
                   tag_at(a->tags, i)->value);
    }
    assert_int_equal(a->enabled, b->enabled);
    if (a->created || b->created) {
        assert_non_null(a->created);
        assert_non_null(b->created);
        assert_string_equal(a->created, b->created);
    }
    if (a->hint || b->hint) {
        assert_non_null(a->hint);
        assert_non_null(b->hint);
        assert_string_equal(a->hint, b->hint);
    }
}

static void test_50_format_round_trip(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *r1, *r2;
    const char *t1, *t2;
    int i;

    r1 = parse_ok(apr_pstrcat(p,
                              "# my keys\r\n"
                              "\n"
                              "# alice's laptop\n"
                              "alice ",
                              hash_field("a", p),
                              " hint=wxyz tenant=acme created="
                              "2026-11-27T11:00:00Z\n",
                              "bob ", hash_field("b", p),
                              " state=revoked tags=tier=official,region=eu,"
                              "region=us priority=low models=m1,m2\n",
                              "carol ", hash_field("c", p),
                              " priority=normal tenant=acme\n", "dave ",
                              hash_field("d", p), " priority=high\n",
                              "\n# the end\n", NULL),
                  p);
    assert_int_equal(ark_keys_format(&t1, r1, p), APR_SUCCESS);
    assert_string_equal(t1,
                        apr_pstrcat(p,
                                    "# my keys\n"
                                    "\n"
                                    "# alice's laptop\n"
                                    "alice ",
                                    hash_field("a", p),
                                    " tenant=acme "
                                    "created=2026-11-27T11:00:00Z hint=wxyz\n",
                                    "bob ", hash_field("b", p),
                                    " models=m1,m2 priority=low "
                                    "tags=tier=official,region=eu,region=us "
                                    "state=revoked\n",
                                    "carol ", hash_field("c", p),
                                    " tenant=acme\n", /* normal omitted */
                                    "dave ", hash_field("d", p),
                                    " priority=high\n"
                                    "\n# the end\n",
                                    NULL));
    r2 = parse_ok(t1, p);
    assert_int_equal(ark_keys_count(r2), ark_keys_count(r1));
    for (i = 0; i < ark_keys_count(r1); i++) {
        assert_same_key(ark_keys_at(r1, i), ark_keys_at(r2, i));
    }
    assert_int_equal(ark_keys_format(&t2, r2, p), APR_SUCCESS);
    assert_string_equal(t1, t2);
}

static void test_51_format_header(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const char *text, *again;

    /* No leading comment: the standard header is put first, once. */
    ring = parse_ok(apr_pstrcat(p, "a ", hash_field("a", p), "\n", NULL), p);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_int_equal(strncmp(text, "# Ark virtual keys.", 19), 0);
    assert_contains(text, "\n\na sha256:");
    ring = parse_ok(text, p);
    assert_int_equal(ark_keys_format(&again, ring, p), APR_SUCCESS);
    assert_string_equal(text, again);

    assert_int_equal(ark_keys_make(&ring, p), APR_SUCCESS);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_int_equal(strncmp(text, "# Ark virtual keys.", 19), 0);
    ring = parse_ok(text, p);
    assert_int_equal(ark_keys_count(ring), 0);

    assert_int_equal(ark_keys_format(&text, NULL, p), APR_EINVAL);
}

static void test_52_add(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *added;
    ark_key_t key;
    apr_array_header_t *models, *tags;
    ark_tag_t *tag;
    const char *err, *text;
    int all;

    assert_int_equal(ark_keys_make(&ring, p), APR_SUCCESS);
    ark_key_init(&key);
    key.name = "alice";
    ark_keys_hash(key.hash, "sk-1", 4);
    key.hint = "ab_-";
    key.created = "2026-11-27T11:00:00Z";
    key.line = 42;
    assert_int_equal(ark_keys_add(&added, ring, &key, &err), APR_SUCCESS);
    assert_ptr_not_equal(added, &key);
    assert_string_equal(added->tenant, "alice");
    assert_int_equal(added->priority, ARK_PRIO_NORMAL);
    assert_null(added->tags);
    assert_int_equal(added->line, 0);
    assert_ptr_equal(ark_keys_lookup(ring, "sk-1", 4), added);

    /* Duplicates by name and by hash. */
    key.name = "alice";
    ark_keys_hash(key.hash, "sk-2", 4);
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EEXIST);
    assert_contains(err, "'alice' already exists");
    key.name = "bob";
    ark_keys_hash(key.hash, "sk-1", 4);
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EEXIST);

    /* Invalid fields. */
    ark_keys_hash(key.hash, "sk-2", 4);
    key.name = "bad name";
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    key.name = "bob";
    key.tenant = "bad/tenant";
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    key.tenant = "acme";
    key.hint = "toolong";
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    key.hint = NULL;
    key.created = "yesterday";
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    key.created = NULL;
    key.all_models = 0;
    key.models = NULL;
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    models = apr_array_make(p, 2, sizeof(const char *));
    APR_ARRAY_PUSH(models, const char *) = "bad model";
    key.models = models;
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    key.all_models = 1;
    key.priority = ARK_PRIO_COUNT;
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    assert_contains(err, "invalid priority");
    key.priority = -1;
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    key.priority = ARK_PRIO_LOW;
    tags = apr_array_make(p, 2, sizeof(ark_tag_t));
    tag = apr_array_push(tags);
    tag->key = "region";
    tag->value = "e u";
    key.tags = tags;
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    assert_string_equal(err, "tags: tag 1 has a character outside "
                             "A-Z a-z 0-9 . _ : / -");
    tag->value = NULL;
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    assert_string_equal(err, "tags: tag 1 has an empty value");
    tag->value = "eu";
    tag = apr_array_push(tags);
    tag->key = "region";
    tag->value = "eu";
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    assert_string_equal(err, "tags: tag 2 repeats tag 1");
    tag->key = "tier";
    tag->value = "official";
    key.all_models = 0;
    assert_int_equal(ark_keys_count(ring), 1);

    /* A valid second key; the ring copies the model list. */
    assert_int_equal(ark_keys_models_parse(&models, &all, "m1,m2", &err, p),
                     APR_SUCCESS);
    key.models = models;
    key.enabled = 0;
    assert_int_equal(ark_keys_add(&added, ring, &key, &err), APR_SUCCESS);
    APR_ARRAY_IDX(models, 0, const char *) = "changed";
    tag->value = "changed";
    assert_string_equal(model_at(added, 0), "m1");
    assert_string_equal(added->tenant, "acme");
    assert_null(added->hint);
    assert_int_equal(added->priority, ARK_PRIO_LOW);
    assert_int_equal(added->tags->nelts, 2);
    assert_tag(added->tags, 1, "tier", "official");
    assert_int_equal(ark_keys_count(ring), 2);

    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_contains(text, "\nbob sha256:");
    assert_contains(text, " tenant=acme models=m1,m2 priority=low "
                          "tags=region=eu,tier=official state=revoked\n");

    /* An empty tag array is no tags. */
    key.name = "carol";
    ark_keys_hash(key.hash, "sk-3", 4);
    key.tags = apr_array_make(p, 1, sizeof(ark_tag_t));
    assert_int_equal(ark_keys_add(&added, ring, &key, &err), APR_SUCCESS);
    assert_null(added->tags);
}

static void test_53_set_enabled_and_remove(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const char *text;

    ring = parse_ok(apr_pstrcat(p,
                                "# file notes\n"
                                "\n"
                                "# about a\n"
                                "a ",
                                hash_field("a", p),
                                "\n"
                                "# free-standing note\n"
                                "\n"
                                "# about b\n"
                                "b ",
                                hash_field("b", p),
                                "\n"
                                "c ",
                                hash_field("c", p),
                                "\n"
                                "# end\n",
                                NULL),
                    p);

    assert_int_equal(ark_keys_set_enabled(ring, "b", 0), APR_SUCCESS);
    assert_false(ark_keys_lookup(ring, "b", 1)->enabled);
    assert_int_equal(ark_keys_set_enabled(ring, "b", 1), APR_SUCCESS);
    assert_true(ark_keys_lookup(ring, "b", 1)->enabled);
    assert_int_equal(ark_keys_set_enabled(ring, "zz", 0), APR_ENOENT);

    /* Removing b drops "# about b" but keeps the free-standing note. */
    assert_int_equal(ark_keys_remove(ring, "b"), APR_SUCCESS);
    assert_int_equal(ark_keys_remove(ring, "b"), APR_ENOENT);
    assert_null(ark_keys_lookup(ring, "b", 1));
    assert_null(ark_keys_find_name(ring, "b"));
    assert_int_equal(ark_keys_count(ring), 2);
    assert_string_equal(ark_keys_at(ring, 1)->name, "c");
    assert_non_null(ark_keys_lookup(ring, "c", 1));
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_string_equal(text, apr_pstrcat(p,
                                          "# file notes\n"
                                          "\n"
                                          "# about a\n"
                                          "a ",
                                          hash_field("a", p),
                                          "\n"
                                          "# free-standing note\n"
                                          "\n"
                                          "c ",
                                          hash_field("c", p),
                                          "\n"
                                          "# end\n",
                                          NULL));

    /* Removing the last key keeps the trailer; removing all keeps notes. */
    assert_int_equal(ark_keys_remove(ring, "c"), APR_SUCCESS);
    assert_int_equal(ark_keys_remove(ring, "a"), APR_SUCCESS);
    assert_int_equal(ark_keys_count(ring), 0);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_string_equal(text, "# file notes\n\n# free-standing note\n\n"
                              "# end\n");
    assert_int_equal(ark_keys_remove(NULL, "a"), APR_ENOENT);
}

static void test_54_set_attrs(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;
    ark_key_t attrs;
    apr_array_header_t *tags;
    const char *err, *text, *before;
    int changed, all;

    ring = parse_ok(apr_pstrcat(p,
                                "# about a\n"
                                "a ",
                                hash_field("a", p),
                                " tenant=acme created=2026-11-27T11:00:00Z "
                                "hint=wxyz\n"
                                "b ",
                                hash_field("b", p), " state=revoked\n", NULL),
                    p);
    k = ark_keys_find_name(ring, "a");
    ark_key_init(&attrs);

    /* Priority and tags; other fields, the comment and line stay. */
    attrs.priority = ARK_PRIO_HIGH;
    assert_int_equal(
        ark_keys_tags_parse(&attrs.tags, "region=eu,tier=x", &err, p),
        APR_SUCCESS);
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a", &attrs,
                                        ARK_KEY_SET_PRIORITY | ARK_KEY_SET_TAGS,
                                        &err),
                     APR_SUCCESS);
    assert_true(changed);
    assert_ptr_equal(ark_keys_find_name(ring, "a"), k);
    assert_int_equal(k->priority, ARK_PRIO_HIGH);
    assert_int_equal(k->tags->nelts, 2);
    assert_tag(k->tags, 0, "region", "eu");
    assert_ptr_not_equal(k->tags, attrs.tags); /* copied */
    assert_string_equal(k->tenant, "acme");
    assert_int_equal(k->line, 2);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_contains(text, apr_pstrcat(p, "# about a\na ", hash_field("a", p),
                                      " tenant=acme priority=high "
                                      "tags=region=eu,tier=x "
                                      "created=2026-11-27T11:00:00Z "
                                      "hint=wxyz\nb ",
                                      NULL));
    assert_non_null(ark_keys_lookup(ring, "a", 1));

    /* The same values again change nothing. */
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a", &attrs,
                                        ARK_KEY_SET_PRIORITY | ARK_KEY_SET_TAGS,
                                        &err),
                     APR_SUCCESS);
    assert_false(changed);

    /* Fields not selected by which are ignored, even when invalid. */
    ark_key_init(&attrs);
    attrs.priority = 99;
    attrs.tenant = "not valid!";
    attrs.name = "renamed";
    attrs.enabled = 0;
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a", &attrs, 0, &err),
                     APR_SUCCESS);
    assert_false(changed);
    assert_int_equal(k->priority, ARK_PRIO_HIGH);
    assert_string_equal(k->name, "a");
    assert_true(k->enabled);

    /* One invalid field: nothing changes, not even the valid ones. */
    attrs.tenant = "other";
    attrs.priority = ARK_PRIO_LOW;
    tags = apr_array_make(p, 1, sizeof(ark_tag_t));
    ((ark_tag_t *)apr_array_push(tags))->key = "";
    attrs.tags = tags;
    assert_int_equal(
        ark_keys_set_attrs(
            &changed, ring, "a", &attrs,
            ARK_KEY_SET_TENANT | ARK_KEY_SET_PRIORITY | ARK_KEY_SET_TAGS, &err),
        APR_EINVAL);
    assert_string_equal(err, "tags: tag 1 has an empty key");
    assert_false(changed);
    assert_string_equal(k->tenant, "acme");
    assert_int_equal(k->priority, ARK_PRIO_HIGH);
    assert_int_equal(k->tags->nelts, 2);
    attrs.priority = ARK_PRIO_COUNT;
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_PRIORITY, &err),
        APR_EINVAL);
    attrs.tenant = "bad tenant";
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_TENANT, &err),
        APR_EINVAL);
    attrs.all_models = 0;
    attrs.models = NULL;
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_MODELS, &err),
        APR_EINVAL);
    assert_string_equal(k->tenant, "acme");
    assert_true(k->all_models);

    /* Removing tags (NULL or empty), resetting priority and tenant. */
    ark_key_init(&attrs);
    assert_int_equal(
        ark_keys_set_attrs(
            &changed, ring, "a", &attrs,
            ARK_KEY_SET_TENANT | ARK_KEY_SET_PRIORITY | ARK_KEY_SET_TAGS, &err),
        APR_SUCCESS);
    assert_true(changed);
    assert_null(k->tags);
    assert_int_equal(k->priority, ARK_PRIO_NORMAL);
    assert_string_equal(k->tenant, "a");
    attrs.tags = apr_array_make(p, 1, sizeof(ark_tag_t));
    assert_int_equal(
        ark_keys_set_attrs(&changed, ring, "a", &attrs, ARK_KEY_SET_TAGS, &err),
        APR_SUCCESS);
    assert_false(changed);
    assert_null(k->tags);

    /* Models: a list, the same list, a different order, back to all. */
    assert_int_equal(
        ark_keys_models_parse(&attrs.models, &all, "m1,m2", &err, p),
        APR_SUCCESS);
    attrs.all_models = all;
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "b", &attrs,
                                        ARK_KEY_SET_MODELS, &err),
                     APR_SUCCESS);
    assert_true(changed);
    k = ark_keys_find_name(ring, "b");
    assert_false(k->all_models);
    assert_int_equal(k->models->nelts, 2);
    APR_ARRAY_IDX(attrs.models, 0, const char *) = "changed";
    assert_string_equal(model_at(k, 0), "m1"); /* copied */
    assert_int_equal(
        ark_keys_models_parse(&attrs.models, &all, "m1,m2", &err, p),
        APR_SUCCESS);
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "b", &attrs,
                                        ARK_KEY_SET_MODELS, &err),
                     APR_SUCCESS);
    assert_false(changed);
    assert_int_equal(
        ark_keys_models_parse(&attrs.models, &all, "m2,m1", &err, p),
        APR_SUCCESS);
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "b", &attrs,
                                        ARK_KEY_SET_MODELS, &err),
                     APR_SUCCESS);
    assert_true(changed);
    assert_string_equal(model_at(k, 0), "m2");
    attrs.all_models = 1;
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "b", &attrs,
                                        ARK_KEY_SET_MODELS, &err),
                     APR_SUCCESS);
    assert_true(changed);
    assert_true(k->all_models);
    assert_int_equal(k->models->nelts, 0);
    assert_false(k->enabled); /* state is not set_attrs' business */

    /* Unknown keys and bad arguments. */
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "zz", &attrs,
                                        ARK_KEY_SET_MODELS, &err),
                     APR_ENOENT);
    assert_string_equal(err, "no key named 'zz'");
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a b", &attrs,
                                        ARK_KEY_SET_MODELS, &err),
                     APR_ENOENT);
    assert_string_equal(err, "no key of that name");
    assert_int_equal(ark_keys_set_attrs(&changed, NULL, "a", &attrs,
                                        ARK_KEY_SET_MODELS, &err),
                     APR_EINVAL);
    assert_int_equal(
        ark_keys_set_attrs(&changed, ring, "a", NULL, ARK_KEY_SET_MODELS, &err),
        APR_EINVAL);

    /* What was written parses back to the same keys. */
    assert_int_equal(ark_keys_format(&before, ring, p), APR_SUCCESS);
    ring = parse_ok(before, p);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_string_equal(text, before);
}

static void test_55_key_init(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring, *parsed;
    ark_key_t key;
    const ark_key_t *added;
    const char *err;
    static const unsigned char zero[ARK_KEY_HASH_LEN];

    ark_key_init(&key);
    assert_null(key.name);
    assert_null(key.tenant);
    assert_null(key.models);
    assert_true(key.all_models);
    assert_int_equal(key.priority, ARK_PRIO_NORMAL);
    assert_null(key.tags);
    assert_true(key.enabled);
    assert_null(key.created);
    assert_null(key.hint);
    assert_int_equal(key.line, 0);
    assert_memory_equal(key.hash, zero, ARK_KEY_HASH_LEN);
    assert_int_equal(key.limits.rpm, 0);
    assert_int_equal(key.limits.tpm, 0);
    assert_int_equal(key.limits.concurrency, 0);
    assert_int_equal(key.limits.budget_day, 0);
    assert_int_equal(key.limits.budget_month, 0);
    assert_null(key.provider_limits);
    assert_false(key.has_previous);
    assert_memory_equal(key.previous_hash, zero, ARK_KEY_HASH_LEN);
    assert_true(key.previous_until == 0);

    /* An initialised key is the same as a line with no attributes. */
    key.name = "a";
    ark_keys_hash(key.hash, "a", 1);
    assert_int_equal(ark_keys_make(&ring, p), APR_SUCCESS);
    assert_int_equal(ark_keys_add(&added, ring, &key, &err), APR_SUCCESS);
    parsed = parse_ok(apr_pstrcat(p, "a ", hash_field("a", p), NULL), p);
    assert_same_key(added, ark_keys_at(parsed, 0));
}

/* ------------------------------------------------------------------ */
/* 6x loading and scale                                               */
/* ------------------------------------------------------------------ */

/* A new temporary file holding text (removed with p); returns its path. */
static const char *write_temp(const char *text, apr_pool_t *p)
{
    return ark_test_temp_file(text, strlen(text), p);
}

static void test_60_load(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const char *path, *err;

    path =
        write_temp(apr_pstrcat(p, "a ", hash_field("sk-a", p), "\n", NULL), p);
    assert_int_equal(ark_keys_load(&ring, path, &err, p), APR_SUCCESS);
    assert_null(err);
    assert_non_null(ark_keys_lookup(ring, "sk-a", 4));
    unlink(path);

    path = write_temp("# c\nx sha256:12\n", p);
    assert_int_equal(ark_keys_load(&ring, path, &err, p), APR_EINVAL);
    assert_null(ring);
    assert_string_equal(err, apr_pstrcat(p, path,
                                         ": line 2: hash has 2 hex "
                                         "digits, expected 64",
                                         NULL));
    unlink(path);

    path = write_temp("", p);
    assert_int_equal(ark_keys_load(&ring, path, &err, p), APR_SUCCESS);
    assert_int_equal(ark_keys_count(ring), 0);
    unlink(path);

    assert_int_equal(ark_keys_load(&ring, "/nonexistent/ark/keys", &err, p),
                     APR_ENOENT);
    assert_null(ring);
    assert_contains(err, "'/nonexistent/ark/keys'");

    assert_int_equal(ark_keys_load(&ring, "/tmp", &err, p), APR_EINVAL);
    assert_contains(err, "not a regular file");
}

/* httpd refuses a keys file others may read or write, or its group
 * write; the message names the path, the mode and the fix. */
static void test_62_check_mode(void **state)
{
    static const struct {
        mode_t mode;
        const char *what;        /* NULL: accepted */
    } cases[] = {
        { 0600, NULL },
        { 0640, NULL },
        { 0400, NULL },
        { 0750, NULL },
        { 0644, "readable by others" },
        { 0604, "readable by others" },
        { 0642, "writable by others" },
        { 0646, "readable or writable by others" },
        { 0660, "writable by its group" },
        { 0664, "readable by others" },
        { 0601, NULL },
    };
    apr_pool_t *p = *state;
    const char *path, *err;
    apr_size_t i;

    path = write_temp("", p);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(chmod(path, cases[i].mode), 0);
        if (!cases[i].what) {
            assert_int_equal(ark_keys_check_mode(path, &err, p), APR_SUCCESS);
            assert_null(err);
            continue;
        }
        assert_int_equal(ark_keys_check_mode(path, &err, p), APR_EACCES);
        assert_string_equal(err, apr_psprintf(p, "keys file '%s' has mode "
                                              "%04o: it must not be %s; run "
                                              "'chmod 640 %s'", path,
                                              (unsigned int)cases[i].mode,
                                              cases[i].what, path));
    }
    unlink(path);
    /* a missing file is ark_keys_load's to report */
    assert_int_equal(ark_keys_check_mode("/nonexistent/ark/keys", &err, p),
                     APR_ENOENT);
    assert_null(err);
}

static void test_61_scale_10k(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *lines;
    ark_keyring_t *ring, *built;
    const ark_key_t *k;
    ark_key_t key;
    const char *text, *err, *s;
    char name[32], secret[32];
    int i;

    lines = apr_array_make(p, SCALE_KEYS, sizeof(const char *));
    for (i = 0; i < SCALE_KEYS; i++) {
        snprintf(name, sizeof(name), "key%05d", i);
        snprintf(secret, sizeof(secret), "sk-ark-secret-%d", i);
        APR_ARRAY_PUSH(lines, const char *) = apr_pstrcat(
            p, name, " ", hash_field(secret, p), i % 7 ? "" : " state=revoked",
            i % 3 ? "\n" : " models=m1,m2\n", NULL);
    }
    text = apr_array_pstrcat(p, lines, '\0');
    ring = parse_ok(text, p);
    assert_int_equal(ark_keys_count(ring), SCALE_KEYS);

    /* The same keys added one by one (the index grows as it goes). */
    assert_int_equal(ark_keys_make(&built, p), APR_SUCCESS);
    ark_key_init(&key);
    for (i = 0; i < SCALE_KEYS; i++) {
        snprintf(name, sizeof(name), "key%05d", i);
        snprintf(secret, sizeof(secret), "sk-ark-secret-%d", i);
        key.name = name;
        ark_keys_hash(key.hash, secret, strlen(secret));
        assert_int_equal(ark_keys_add(NULL, built, &key, &err), APR_SUCCESS);
    }

    for (i = 0; i < SCALE_KEYS; i++) {
        snprintf(name, sizeof(name), "key%05d", i);
        snprintf(secret, sizeof(secret), "sk-ark-secret-%d", i);
        k = ark_keys_lookup(ring, secret, strlen(secret));
        assert_non_null(k);
        assert_string_equal(k->name, name);
        assert_int_equal(k->enabled, i % 7 ? 1 : 0);
        assert_int_equal(ark_key_allows_model(k, "m3"), i % 3 ? 1 : 0);
        k = ark_keys_lookup(built, secret, strlen(secret));
        assert_non_null(k);
        assert_string_equal(k->name, name);
        snprintf(secret, sizeof(secret), "sk-ark-secret-%d", i + SCALE_KEYS);
        assert_null(ark_keys_lookup(ring, secret, strlen(secret)));
        assert_null(ark_keys_lookup(built, secret, strlen(secret)));
    }
    assert_ptr_equal(ark_keys_find_name(ring, "key09999"),
                     ark_keys_at(ring, SCALE_KEYS - 1));

    /* Remove every other key from the built ring; the rest still work. */
    for (i = 0; i < SCALE_KEYS; i += 2) {
        snprintf(name, sizeof(name), "key%05d", i);
        assert_int_equal(ark_keys_remove(built, name), APR_SUCCESS);
    }
    assert_int_equal(ark_keys_count(built), SCALE_KEYS / 2);
    for (i = 0; i < SCALE_KEYS; i++) {
        snprintf(secret, sizeof(secret), "sk-ark-secret-%d", i);
        s = secret;
        k = ark_keys_lookup(built, s, strlen(s));
        if (i % 2) {
            assert_non_null(k);
        }
        else {
            assert_null(k);
        }
    }
}

/* ------------------------------------------------------------------ */
/* 7x governance: limits, budgets, tenant lines, rotation             */
/* ------------------------------------------------------------------ */

#define NANO 1000000000LL

static const ark_provider_limit_t *plimit_at(const ark_key_t *k, int i)
{
    assert_non_null(k->provider_limits);
    assert_true(i < k->provider_limits->nelts);
    return &APR_ARRAY_IDX(k->provider_limits, i, ark_provider_limit_t);
}

static void test_70_parse_limits(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;
    const ark_tenant_t *t;

    ring = parse_ok(
        apr_pstrcat(p, "a ", hash_field("a", p),
                    " budget_month=500 rpm=60 tpm=100000 concurrency=4 "
                    "budget_day=0.5 tpm@azure.eu-1=2000 rpm@openai=10 "
                    "tpm@openai=1000\n",
                    "b ", hash_field("b", p),
                    " budget_day=12.000000001 budget_month=1000000000 "
                    "rpm=1000000000000\n",
                    "c ", hash_field("c", p), "\n", NULL),
        p);
    k = ark_keys_find_name(ring, "a");
    assert_int_equal(k->limits.rpm, 60);
    assert_int_equal(k->limits.tpm, 100000);
    assert_int_equal(k->limits.concurrency, 4);
    assert_int_equal(k->limits.budget_day, NANO / 2);
    assert_int_equal(k->limits.budget_month, 500 * NANO);
    /* Provider limits in the order their providers first appear. */
    assert_int_equal(k->provider_limits->nelts, 2);
    assert_string_equal(plimit_at(k, 0)->provider, "azure.eu-1");
    assert_int_equal(plimit_at(k, 0)->rpm, 0);
    assert_int_equal(plimit_at(k, 0)->tpm, 2000);
    assert_string_equal(plimit_at(k, 1)->provider, "openai");
    assert_int_equal(plimit_at(k, 1)->rpm, 10);
    assert_int_equal(plimit_at(k, 1)->tpm, 1000);
    assert_ptr_equal(ark_key_provider_limit(k, "openai"), plimit_at(k, 1));
    assert_null(ark_key_provider_limit(k, "OpenAI"));
    assert_null(ark_key_provider_limit(k, "open"));
    assert_null(ark_key_provider_limit(k, NULL));
    assert_null(ark_key_provider_limit(NULL, "openai"));
    assert_false(k->has_previous);

    k = ark_keys_find_name(ring, "b");
    assert_int_equal(k->limits.budget_day, 12 * NANO + 1);
    assert_int_equal(k->limits.budget_month, 1000000000LL * NANO);
    assert_int_equal(k->limits.rpm, 1000000000000LL);
    assert_int_equal(k->limits.tpm, 0);
    assert_null(k->provider_limits);

    k = ark_keys_find_name(ring, "c");
    assert_int_equal(k->limits.rpm, 0);
    assert_int_equal(k->limits.budget_month, 0);
    assert_null(k->provider_limits);
    assert_null(ark_key_provider_limit(k, "openai"));

    /* Tenant lines, one for a tenant no key uses; keys keep their order. */
    ring = parse_ok(apr_pstrcat(p,
                                "# limits of acme\n"
                                "tenant:acme rpm=1000 budget_month=250.75\n"
                                "a ",
                                hash_field("a", p),
                                " tenant=acme\n"
                                "  tenant:ghost\tconcurrency=8 tpm=5 "
                                "budget_day=1\n"
                                "tenant:empty\n",
                                NULL),
                    p);
    assert_int_equal(ark_keys_count(ring), 1);
    assert_int_equal(ark_keys_tenant_count(ring), 3);
    assert_int_equal(ark_keys_tenant_count(NULL), 0);
    t = ark_keys_tenant(ring, "acme");
    assert_non_null(t);
    assert_ptr_equal(t, ark_keys_tenant_at(ring, 0));
    assert_string_equal(t->name, "acme");
    assert_int_equal(t->line, 2);
    assert_int_equal(t->limits.rpm, 1000);
    assert_int_equal(t->limits.tpm, 0);
    assert_int_equal(t->limits.budget_month, 250 * NANO + 750000000);
    t = ark_keys_tenant_at(ring, 1);
    assert_string_equal(t->name, "ghost");
    assert_int_equal(t->line, 4);
    assert_int_equal(t->limits.concurrency, 8);
    assert_int_equal(t->limits.tpm, 5);
    assert_int_equal(t->limits.budget_day, NANO);
    t = ark_keys_tenant(ring, "empty");
    assert_non_null(t);
    assert_int_equal(t->limits.rpm, 0);
    assert_null(ark_keys_tenant(ring, "a"));
    assert_null(ark_keys_tenant(ring, "Acme"));
    assert_null(ark_keys_tenant(ring, NULL));
    assert_null(ark_keys_tenant(NULL, "acme"));
    assert_null(ark_keys_tenant_at(ring, 3));
    assert_null(ark_keys_tenant_at(ring, -1));
    assert_null(ark_keys_tenant_at(NULL, 0));
    assert_string_equal(ark_keys_at(ring, 0)->tenant, "acme");

    /* A key may be named like a tenant line's tenant. */
    parse_ok(
        apr_pstrcat(p, "tenant:x rpm=1\nx ", hash_field("x", p), "\n", NULL),
        p);
}

static void test_71_parse_previous(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;
    unsigned char h[ARK_KEY_HASH_LEN];
    apr_time_exp_t tm;
    int prev = -1;

    ring = parse_ok(apr_pstrcat(p, "a ", hash_field("new", p),
                                " previous_until=2026-11-28T11:30:05Z "
                                "previous=",
                                hash_field("old", p), " hint=abcd\n", "b ",
                                hash_field("b", p), "\n", NULL),
                    p);
    k = ark_keys_at(ring, 0);
    assert_true(k->has_previous);
    ark_keys_hash(h, "old", 3);
    assert_memory_equal(k->previous_hash, h, ARK_KEY_HASH_LEN);
    assert_int_equal(apr_time_exp_gmt(&tm, k->previous_until), APR_SUCCESS);
    assert_int_equal(tm.tm_year, 126);
    assert_int_equal(tm.tm_mon, 10);
    assert_int_equal(tm.tm_mday, 28);
    assert_int_equal(tm.tm_hour, 11);
    assert_int_equal(tm.tm_min, 30);
    assert_int_equal(tm.tm_sec, 5);
    assert_int_equal(tm.tm_usec, 0);
    assert_false(ark_keys_at(ring, 1)->has_previous);

    /* ark_keys_lookup matches current hashes only; lookup_ex both and
     * says which. */
    assert_ptr_equal(ark_keys_lookup(ring, "new", 3), k);
    assert_null(ark_keys_lookup(ring, "old", 3));
    assert_null(ark_keys_lookup_hash(ring, h));
    assert_ptr_equal(ark_keys_lookup_ex(ring, "new", 3, &prev), k);
    assert_int_equal(prev, 0);
    assert_ptr_equal(ark_keys_lookup_ex(ring, "old", 3, &prev), k);
    assert_int_equal(prev, 1);
    assert_ptr_equal(ark_keys_lookup_ex(ring, "b", 1, &prev),
                     ark_keys_at(ring, 1));
    assert_int_equal(prev, 0);
    prev = -1;
    assert_null(ark_keys_lookup_ex(ring, "nope", 4, &prev));
    assert_int_equal(prev, 0);
    assert_ptr_equal(ark_keys_lookup_ex(ring, "old", 3, NULL), k);
    assert_null(ark_keys_lookup_ex(NULL, "old", 3, &prev));
    assert_null(ark_keys_lookup_ex(ring, NULL, 0, &prev));
}

/* Lines that must fail, for the new attributes; "H" is a valid hash. */
static void test_72_parse_limit_errors(void **state)
{
    static const bad_case_t cases[] = {
        /* rpm= tpm= concurrency= */
        {"alice H rpm=0", "line 1: invalid rpm '0' (expected a whole "
                          "number from 1 to 1000000000000)"},
        {"alice H rpm=-5", "invalid rpm '-5'"},
        {"alice H rpm=+5", "invalid rpm (expected"},
        {"alice H rpm=1.5", "invalid rpm '1.5'"},
        {"alice H rpm=1e3", "invalid rpm '1e3'"},
        {"alice H rpm=1000000000001", "invalid rpm '1000000000001'"},
        {"alice H rpm=99999999999999999999999", "invalid rpm '9999"},
        {"alice H rpm= tpm=1", "attribute 'rpm' has an empty value"},
        {"alice H rpm=1 rpm=2", "attribute 'rpm' given twice"},
        {"alice H tpm=abc", "invalid tpm 'abc'"},
        {"alice H tpm=10 tpm=10", "attribute 'tpm' given twice"},
        {"alice H concurrency=0", "invalid concurrency '0'"},
        {"alice H concurrency=two", "invalid concurrency 'two'"},
        {"alice H Rpm=1", "unknown attribute 'Rpm'"},
        {"alice H rps=1", "unknown attribute 'rps' (expected tenant, "
                          "models, priority, tags, state, created, hint, "
                          "rpm, tpm, concurrency, budget_day, budget_month, "
                          "rpm@<provider>, tpm@<provider>, previous, "
                          "previous_until)"},
        /* budgets */
        {"alice H budget_day=0", "invalid budget_day '0' (expected an "
                                 "amount above 0 with at most 9 decimals, "
                                 "such as 25 or 0.50)"},
        {"alice H budget_day=0.000000000", "invalid budget_day"},
        {"alice H budget_day=-1", "invalid budget_day '-1'"},
        {"alice H budget_day=1.0000000001", "invalid budget_day"},
        {"alice H budget_day=12.", "invalid budget_day '12.'"},
        {"alice H budget_day=.5", "invalid budget_day '.5'"},
        {"alice H budget_day=1e3", "invalid budget_day '1e3'"},
        {"alice H budget_day=1,5", "invalid budget_day (expected"},
        {"alice H budget_month=1000000000.000000001", "invalid budget_month"},
        {"alice H budget_month=5 budget_month=6",
         "attribute 'budget_month' given twice"},
        {"alice H budget_month=", "attribute 'budget_month' has an empty "
                                  "value"},
        /* provider limits */
        {"alice H rpm@=5", "invalid provider name in rpm@ (expected 1-64 "
                           "characters of A-Z a-z 0-9 . _ -)"},
        {"alice H tpm@open!ai=5", "invalid provider name in tpm@"},
        {"alice H rpm@open:ai=5", "invalid provider name in rpm@"},
        {"alice H rpm@a@b=5", "invalid provider name in rpm@"},
        {"alice H rpm@openai=0", "invalid rpm@openai '0' (expected a whole "
                                 "number"},
        {"alice H tpm@openai=x", "invalid tpm@openai 'x'"},
        {"alice H rpm@openai=1 rpm@openai=2",
         "attribute 'rpm@openai' given twice"},
        {"alice H rpm@openai=1 tpm@openai=2 tpm@openai=2",
         "attribute 'tpm@openai' given twice"},
        {"alice H rpm@openai=", "attribute 'rpm@openai' has an empty value"},
        {"alice H xpm@openai=1", "unknown attribute 'xpm@openai'"},
        {"alice H @openai=1", "unknown attribute '@openai'"},
        {"alice H rpms@openai=1", "unknown attribute 'rpms@openai'"},
        /* previous= previous_until= */
        {"alice H previous=sha256:" HEX_ABC,
         "previous= and previous_until= must be given together"},
        {"alice H previous_until=2026-11-28T11:00:00Z",
         "previous= and previous_until= must be given together"},
        {"alice H previous=sha1:abc previous_until=2026-11-28T11:00:00Z",
         "line 1: previous: expected 'sha256:' and 64 lowercase hex digits"},
        {"alice H previous=sha256:abc", "previous: hash has 3 hex digits, "
                                        "expected 64"},
        {"alice H previous=sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A3"
         "96177A9CB410FF61F20015AD",
         "previous: hash has a character that is not a lowercase hex"},
        {"alice H previous=", "attribute 'previous' has an empty value"},
        {"alice H previous_until=2026-11-28", "invalid previous_until time "
                                              "(expected UTC like "
                                              "2026-11-27T11:00:00Z)"},
        {"alice H previous_until=2026-13-01T00:00:00Z",
         "invalid previous_until time"},
        {"alice H previous_until=2026-12-31T23:59:60Z",
         "invalid previous_until time"},
        {"alice H previous=sha256:" HEX_ABC " previous=sha256:" HEX_EMPTY,
         "attribute 'previous' given twice"},
        {"alice H previous_until=2026-11-28T11:00:00Z "
         "previous_until=2026-11-28T11:00:00Z",
         "attribute 'previous_until' given twice"},
        /* tenant lines */
        {"tenant:acme models=*", "line 1: attribute 'models' is not allowed "
                                 "on a tenant line (expected rpm, tpm, "
                                 "concurrency, budget_day, budget_month)"},
        {"tenant:acme tenant=x", "attribute 'tenant' is not allowed on a "
                                 "tenant line"},
        {"tenant:acme previous=sha256:" HEX_ABC,
         "attribute 'previous' is not allowed on a tenant line"},
        {"tenant:acme hint=abcd", "attribute 'hint' is not allowed"},
        {"tenant:acme rpm@openai=5", "provider limits are not allowed on a "
                                     "tenant line"},
        {"tenant:acme foo=1", "unknown attribute 'foo' on a tenant line "
                              "(expected rpm, tpm"},
        {"tenant:acme H", "expected attribute=value after the tenant name, "
                          "found a word without '='"},
        {"tenant:acme rpm", "found a word without '='"},
        {"tenant:a!b rpm=1", "line 1: invalid tenant name after 'tenant:' "
                             "(expected 1-64 characters"},
        {"tenant: rpm=1", "invalid tenant name after 'tenant:'"},
        {"tenant:", "invalid tenant name after 'tenant:'"},
        {"tenant:acme rpm=0", "invalid rpm '0'"},
        {"tenant:acme budget_day=0", "invalid budget_day '0'"},
        {"tenant:acme rpm=1 rpm=2", "attribute 'rpm' given twice"},
        {"tenant:acme rpm=", "attribute 'rpm' has an empty value"},
        {"Tenant:acme rpm=1", "invalid key name"},
        {NULL, NULL}};
    apr_pool_t *p = *state;
    const bad_case_t *c;
    const char *err;

    for (c = cases; c->line; c++) {
        err = parse_fail(expand(c->line, p), p);
        if (!strstr(err, c->expect)) {
            print_error("line '%s': got '%s', expected '%s'\n", c->line, err,
                        c->expect);
            fail();
        }
    }
}

static void test_73_parse_duplicates_and_hashes(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *parts;
    const char *err, *until = " previous_until=2026-11-28T11:00:00Z";
    int i;

    /* Each tenant at most once. */
    err = parse_fail("tenant:acme rpm=1\n# x\n\ntenant:acme tpm=2\n", p);
    assert_string_equal(err, "line 4: duplicate tenant line for 'acme' "
                             "(first on line 1)");
    /* A key's previous hash is not its current one... */
    err = parse_fail(apr_pstrcat(p, "a ", hash_field("a", p), " previous=",
                                 hash_field("a", p), until, "\n", NULL),
                     p);
    assert_string_equal(err, "line 1: previous= is the key's own current "
                             "hash");
    /* ...nor any other hash of the file, in either order. */
    err = parse_fail(
        apr_pstrcat(p, "a ", hash_field("a", p), "\nb ", hash_field("b", p),
                    " previous=", hash_field("a", p), until, "\n", NULL),
        p);
    assert_string_equal(err, "line 2: previous= is also the hash of key 'a' "
                             "(line 1): two keys cannot share a secret");
    err = parse_fail(apr_pstrcat(p, "b ", hash_field("b", p),
                                 " previous=", hash_field("a", p), until,
                                 "\na ", hash_field("a", p), "\n", NULL),
                     p);
    assert_string_equal(err, "line 2: same hash as the previous secret of "
                             "key 'b' (line 1): two keys cannot share a "
                             "secret");
    err = parse_fail(apr_pstrcat(p, "a ", hash_field("a", p),
                                 " previous=", hash_field("old", p), until,
                                 "\nb ", hash_field("b", p), " previous=",
                                 hash_field("old", p), until, "\n", NULL),
                     p);
    assert_string_equal(err, "line 2: previous= is also the previous hash of "
                             "key 'a' (line 1): two keys cannot share a "
                             "secret");
    /* The hash messages never quote a hash. */
    assert_lacks(err, hash_field("old", p) + 7);

    /* At most ARK_KEY_PROVIDER_LIMITS_MAX providers; more rpm@/tpm@ of
     * the same providers are fine. */
    parts = apr_array_make(p, 40, sizeof(const char *));
    APR_ARRAY_PUSH(parts, const char *) =
        apr_pstrcat(p, "a ", hash_field("a", p), NULL);
    for (i = 0; i < ARK_KEY_PROVIDER_LIMITS_MAX; i++) {
        APR_ARRAY_PUSH(parts, const char *) =
            apr_psprintf(p, " rpm@p%d=%d tpm@p%d=%d", i, i + 1, i, i + 2);
    }
    assert_int_equal(
        ark_keys_at(parse_ok(apr_array_pstrcat(p, parts, '\0'), p), 0)
            ->provider_limits->nelts,
        ARK_KEY_PROVIDER_LIMITS_MAX);
    APR_ARRAY_PUSH(parts, const char *) = " tpm@one-more=1";
    err = parse_fail(apr_array_pstrcat(p, parts, '\0'), p);
    assert_string_equal(err, "line 1: limits towards more than 16 "
                             "providers");
}

/* Messages about the new attributes do not repeat secrets or hashes. */
static void test_74_limit_errors_do_not_leak(void **state)
{
    apr_pool_t *p = *state;
    const char *secret, *hash, *err, *line;

    assert_int_equal(ark_keys_secret_make(&secret, p), APR_SUCCESS);
    hash = hash_field(secret, p);
    line = apr_pstrcat(p, "a ", hash_field("a", p), " ", NULL);
    err = parse_fail(apr_pstrcat(p, line, "rpm=", secret, NULL), p);
    assert_lacks(err, secret + 7);
    assert_contains(err, "invalid rpm (expected");
    err = parse_fail(apr_pstrcat(p, line, "budget_day=", secret, NULL), p);
    assert_lacks(err, secret + 7);
    /* A secret is a valid provider name: never quoted whole. */
    err = parse_fail(
        apr_pstrcat(p, line, "rpm@", secret, "=1 rpm@", secret, "=2", NULL), p);
    assert_lacks(err, secret + 7);
    assert_string_equal(err, "line 1: attribute 'rpm@<provider>' given "
                             "twice");
    err = parse_fail(apr_pstrcat(p, line, "tpm@", secret, "=x", NULL), p);
    assert_lacks(err, secret + 7);
    err = parse_fail(apr_pstrcat(p, line, secret, "@openai=1", NULL), p);
    assert_lacks(err, secret + 7);
    err = parse_fail(apr_pstrcat(p, line, "previous=", secret,
                                 " previous_until=2026-11-28T11:00:00Z", NULL),
                     p);
    assert_lacks(err, secret + 7);
    err = parse_fail(apr_pstrcat(p, line, "previous=", hash, "0",
                                 " previous_until=2026-11-28T11:00:00Z", NULL),
                     p);
    assert_lacks(err, apr_pstrndup(p, hash + 7, 16));
    err = parse_fail(apr_pstrcat(p, "tenant:acme ", secret, "=1", NULL), p);
    assert_lacks(err, secret + 7);
    err = parse_fail(apr_pstrcat(p, "tenant:", secret, "! rpm=1", NULL), p);
    assert_lacks(err, secret + 7);
}

static void test_75_format_round_trip_limits(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *r1, *r2;
    const char *t1, *t2;
    int i, j;

    r1 =
        parse_ok(apr_pstrcat(p,
                             "# keys\n"
                             "\n"
                             "# the acme tenant\n"
                             "tenant:acme budget_month=250.750 rpm=1000\n"
                             "a ",
                             hash_field("a", p),
                             " tpm@openai=1000 hint=abcd previous_until="
                             "2026-11-28T11:30:05Z budget_day=0.50 tenant=acme "
                             "rpm@azure=7 previous=",
                             hash_field("old", p),
                             " concurrency=4 rpm@openai=10 rpm=60 tpm=100000 "
                             "budget_month=500\n"
                             "\n"
                             "tenant:ghost concurrency=2 tpm=30\n"
                             "tenant:bare\n"
                             "b ",
                             hash_field("b", p), " budget_day=0.000000001\n",
                             "# end\n", NULL),
                 p);
    assert_int_equal(ark_keys_format(&t1, r1, p), APR_SUCCESS);
    assert_string_equal(
        t1, apr_pstrcat(p,
                        "# keys\n"
                        "\n"
                        "# the acme tenant\n"
                        "tenant:acme rpm=1000 budget_month=250.75\n"
                        "a ",
                        hash_field("a", p),
                        " tenant=acme hint=abcd rpm=60 tpm=100000 "
                        "concurrency=4 budget_day=0.5 budget_month=500 "
                        "rpm@openai=10 tpm@openai=1000 rpm@azure=7 "
                        "previous=",
                        hash_field("old", p),
                        " previous_until=2026-11-28T11:30:05Z\n"
                        "\n"
                        "tenant:ghost tpm=30 concurrency=2\n"
                        "tenant:bare\n"
                        "b ",
                        hash_field("b", p), " budget_day=0.000000001\n",
                        "# end\n", NULL));
    r2 = parse_ok(t1, p);
    assert_int_equal(ark_keys_count(r2), ark_keys_count(r1));
    for (i = 0; i < ark_keys_count(r1); i++) {
        const ark_key_t *a = ark_keys_at(r1, i), *b = ark_keys_at(r2, i);

        assert_same_key(a, b);
        assert_memory_equal(&a->limits, &b->limits, sizeof(a->limits));
        assert_int_equal(a->has_previous, b->has_previous);
        assert_memory_equal(a->previous_hash, b->previous_hash,
                            ARK_KEY_HASH_LEN);
        assert_true(a->previous_until == b->previous_until);
        assert_int_equal(a->provider_limits ? a->provider_limits->nelts : 0,
                         b->provider_limits ? b->provider_limits->nelts : 0);
        for (j = 0; a->provider_limits && j < a->provider_limits->nelts; j++) {
            assert_string_equal(plimit_at(a, j)->provider,
                                plimit_at(b, j)->provider);
            assert_int_equal(plimit_at(a, j)->rpm, plimit_at(b, j)->rpm);
            assert_int_equal(plimit_at(a, j)->tpm, plimit_at(b, j)->tpm);
        }
    }
    assert_int_equal(ark_keys_tenant_count(r2), 3);
    for (i = 0; i < 3; i++) {
        assert_string_equal(ark_keys_tenant_at(r1, i)->name,
                            ark_keys_tenant_at(r2, i)->name);
        assert_memory_equal(&ark_keys_tenant_at(r1, i)->limits,
                            &ark_keys_tenant_at(r2, i)->limits,
                            sizeof(ark_limits_t));
    }
    assert_int_equal(ark_keys_format(&t2, r2, p), APR_SUCCESS);
    assert_string_equal(t1, t2);
    assert_ptr_equal(ark_keys_lookup_ex(r2, "old", 3, &i),
                     ark_keys_find_name(r2, "a"));
    assert_int_equal(i, 1);

    /* Removing the key between tenant lines keeps them where they are. */
    assert_int_equal(ark_keys_remove(r2, "a"), APR_SUCCESS);
    assert_int_equal(ark_keys_format(&t2, r2, p), APR_SUCCESS);
    assert_string_equal(t2, apr_pstrcat(p,
                                        "# keys\n"
                                        "\n"
                                        "# the acme tenant\n"
                                        "tenant:acme rpm=1000 "
                                        "budget_month=250.75\n"
                                        "\n"
                                        "tenant:ghost tpm=30 concurrency=2\n"
                                        "tenant:bare\n"
                                        "b ",
                                        hash_field("b", p),
                                        " budget_day=0.000000001\n"
                                        "# end\n",
                                        NULL));
    assert_null(ark_keys_lookup_ex(r2, "old", 3, &i));
    assert_null(ark_keys_lookup_ex(r2, "a", 1, &i));
}

static void test_76_rotate(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;
    unsigned char h2[ARK_KEY_HASH_LEN], h3[ARK_KEY_HASH_LEN];
    unsigned char h1[ARK_KEY_HASH_LEN], hb[ARK_KEY_HASH_LEN];
    apr_time_t until = apr_time_from_sec(1795000000) + 123456;
    const char *err, *text;
    int prev;

    ring = parse_ok(apr_pstrcat(p, "# about a\na ", hash_field("s1", p),
                                " tenant=acme rpm=5 hint=aaaa\nb ",
                                hash_field("sb", p), "\n", NULL),
                    p);
    k = ark_keys_find_name(ring, "a");
    ark_keys_hash(h1, "s1", 2);
    ark_keys_hash(h2, "s2", 2);
    ark_keys_hash(h3, "s3", 2);
    ark_keys_hash(hb, "sb", 2);

    assert_int_equal(ark_keys_rotate(ring, "a", h2, "bbbb", until, &err),
                     APR_SUCCESS);
    assert_null(err);
    assert_ptr_equal(ark_keys_find_name(ring, "a"), k);
    assert_memory_equal(k->hash, h2, ARK_KEY_HASH_LEN);
    assert_true(k->has_previous);
    assert_memory_equal(k->previous_hash, h1, ARK_KEY_HASH_LEN);
    /* Whole seconds, as the file keeps it. */
    assert_true(k->previous_until == apr_time_from_sec(1795000000));
    assert_string_equal(k->hint, "bbbb");
    assert_int_equal(k->limits.rpm, 5);
    assert_ptr_equal(ark_keys_lookup(ring, "s2", 2), k);
    assert_null(ark_keys_lookup(ring, "s1", 2));
    assert_ptr_equal(ark_keys_lookup_ex(ring, "s1", 2, &prev), k);
    assert_int_equal(prev, 1);
    assert_ptr_equal(ark_keys_lookup_ex(ring, "s2", 2, &prev), k);
    assert_int_equal(prev, 0);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_contains(text, apr_pstrcat(p, "# about a\na ", hash_field("s2", p),
                                      " tenant=acme hint=bbbb rpm=5 previous=",
                                      hash_field("s1", p),
                                      " previous_until=2026-11-18T", NULL));
    ring = parse_ok(text, p);
    k = ark_keys_find_name(ring, "a");
    assert_true(k->previous_until == apr_time_from_sec(1795000000));

    /* Hashes in use anywhere are refused; nothing changes. */
    assert_int_equal(ark_keys_rotate(ring, "a", h2, NULL, until, &err),
                     APR_EEXIST);
    assert_string_equal(err, "key 'a' already has this hash");
    assert_int_equal(ark_keys_rotate(ring, "a", h1, NULL, until, &err),
                     APR_EEXIST);
    assert_string_equal(err, "key 'a' already has this previous hash");
    assert_int_equal(ark_keys_rotate(ring, "a", hb, NULL, until, &err),
                     APR_EEXIST);
    assert_int_equal(ark_keys_rotate(ring, "b", h1, NULL, until, &err),
                     APR_EEXIST);
    assert_int_equal(ark_keys_rotate(ring, "zz", h3, NULL, until, &err),
                     APR_ENOENT);
    assert_string_equal(err, "no key named 'zz'");
    assert_int_equal(ark_keys_rotate(ring, "a", h3, "toolong", until, &err),
                     APR_EINVAL);
    assert_int_equal(ark_keys_rotate(ring, "a", NULL, NULL, until, &err),
                     APR_EINVAL);
    assert_int_equal(ark_keys_rotate(NULL, "a", h3, NULL, until, &err),
                     APR_EINVAL);
    assert_memory_equal(k->hash, h2, ARK_KEY_HASH_LEN);
    assert_memory_equal(k->previous_hash, h1, ARK_KEY_HASH_LEN);
    assert_string_equal(k->hint, "bbbb");

    /* Rotating again drops the older previous secret. */
    assert_int_equal(ark_keys_rotate(ring, "a", h3, NULL, 0, &err),
                     APR_SUCCESS);
    assert_null(k->hint);
    assert_memory_equal(k->previous_hash, h2, ARK_KEY_HASH_LEN);
    assert_true(k->previous_until == 0);
    assert_null(ark_keys_lookup_ex(ring, "s1", 2, &prev));
    assert_ptr_equal(ark_keys_lookup_ex(ring, "s2", 2, &prev), k);
    assert_int_equal(prev, 1);
    assert_ptr_equal(ark_keys_lookup(ring, "s3", 2), k);
    /* s1 is free again: another key may take it. */
    assert_int_equal(ark_keys_rotate(ring, "b", h1, NULL, until, &err),
                     APR_SUCCESS);
    assert_ptr_equal(ark_keys_lookup(ring, "s1", 2),
                     ark_keys_find_name(ring, "b"));
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_contains(text, " previous_until=1970-01-01T00:00:00Z\n");
    ring = parse_ok(text, p);
    assert_ptr_equal(ark_keys_lookup_ex(ring, "sb", 2, &prev),
                     ark_keys_find_name(ring, "b"));
    assert_int_equal(prev, 1);
}

static void test_77_set_tenant(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    ark_limits_t l;
    const ark_tenant_t *t;
    const char *err, *text;

    ring = parse_ok(apr_pstrcat(p,
                                "# top\n"
                                "\n"
                                "# about acme\n"
                                "tenant:acme rpm=10\n"
                                "a ",
                                hash_field("a", p),
                                " tenant=acme\n"
                                "# end\n",
                                NULL),
                    p);
    memset(&l, 0, sizeof(l));

    /* Change: limits replaced whole, the line stays in place. */
    l.tpm = 500;
    l.budget_day = 25 * NANO;
    assert_int_equal(ark_keys_set_tenant(ring, "acme", &l, &err), APR_SUCCESS);
    t = ark_keys_tenant(ring, "acme");
    assert_int_equal(t->limits.rpm, 0);
    assert_int_equal(t->limits.tpm, 500);
    assert_int_equal(t->line, 4);
    /* Add: a new line at the end. */
    memset(&l, 0, sizeof(l));
    l.concurrency = 3;
    assert_int_equal(ark_keys_set_tenant(ring, "new.t", &l, &err), APR_SUCCESS);
    t = ark_keys_tenant(ring, "new.t");
    assert_non_null(t);
    assert_int_equal(t->line, 0);
    assert_ptr_equal(ark_keys_tenant_at(ring, 1), t);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_string_equal(text, apr_pstrcat(p,
                                          "# top\n"
                                          "\n"
                                          "# about acme\n"
                                          "tenant:acme tpm=500 "
                                          "budget_day=25\n"
                                          "a ",
                                          hash_field("a", p),
                                          " tenant=acme\n"
                                          "tenant:new.t concurrency=3\n"
                                          "# end\n",
                                          NULL));
    parse_ok(text, p);

    /* Invalid names and limits change nothing. */
    assert_int_equal(ark_keys_set_tenant(ring, "bad name", &l, &err),
                     APR_EINVAL);
    assert_contains(err, "invalid tenant");
    assert_int_equal(ark_keys_set_tenant(ring, NULL, &l, &err), APR_EINVAL);
    l.rpm = -1;
    assert_int_equal(ark_keys_set_tenant(ring, "acme", &l, &err), APR_EINVAL);
    assert_contains(err, "invalid rpm");
    l.rpm = 1000000000001LL;
    assert_int_equal(ark_keys_set_tenant(ring, "acme", &l, &err), APR_EINVAL);
    l.rpm = 0;
    l.budget_month = ARK_MONEY_MAX + 1;
    assert_int_equal(ark_keys_set_tenant(ring, "acme", &l, &err), APR_EINVAL);
    assert_contains(err, "invalid budget_month");
    assert_int_equal(ark_keys_set_tenant(ring, "acme", NULL, &err), APR_EINVAL);
    assert_int_equal(ark_keys_tenant(ring, "acme")->limits.tpm, 500);

    /* All limits 0: the line goes with its own comment. */
    memset(&l, 0, sizeof(l));
    assert_int_equal(ark_keys_set_tenant(ring, "acme", &l, &err), APR_SUCCESS);
    assert_null(ark_keys_tenant(ring, "acme"));
    assert_int_equal(ark_keys_tenant_count(ring), 1);
    assert_int_equal(ark_keys_set_tenant(ring, "never", &l, &err), APR_SUCCESS);
    assert_int_equal(ark_keys_tenant_count(ring), 1);
    assert_int_equal(ark_keys_set_tenant(ring, "new.t", &l, &err), APR_SUCCESS);
    assert_int_equal(ark_keys_tenant_count(ring), 0);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_string_equal(text, apr_pstrcat(p,
                                          "# top\n"
                                          "\n"
                                          "a ",
                                          hash_field("a", p),
                                          " tenant=acme\n"
                                          "# end\n",
                                          NULL));
}

static void test_78_set_attrs_limits(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring;
    const ark_key_t *k;
    ark_key_t attrs;
    ark_provider_limit_t *pl;
    const char *err, *text;
    int changed, i;

    ring = parse_ok(apr_pstrcat(p, "a ", hash_field("a", p),
                                " tenant=acme rpm=5 rpm@openai=1\n", NULL),
                    p);
    k = ark_keys_find_name(ring, "a");
    ark_key_init(&attrs);

    /* Limits and provider limits are replaced whole. */
    attrs.limits.tpm = 1000;
    attrs.limits.budget_month = 3 * NANO + 1;
    attrs.provider_limits = apr_array_make(p, 4, sizeof(ark_provider_limit_t));
    pl = apr_array_push(attrs.provider_limits);
    pl->provider = "azure";
    pl->rpm = 0;
    pl->tpm = 99;
    pl = apr_array_push(attrs.provider_limits);
    pl->provider = "dropped"; /* neither limit: not kept */
    pl->rpm = pl->tpm = 0;
    pl = apr_array_push(attrs.provider_limits);
    pl->provider = "openai";
    pl->rpm = 2;
    pl->tpm = 0;
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a", &attrs,
                                        ARK_KEY_SET_LIMITS, &err),
                     APR_SUCCESS);
    assert_true(changed);
    assert_int_equal(k->limits.rpm, 0);
    assert_int_equal(k->limits.tpm, 1000);
    assert_int_equal(k->limits.budget_month, 3 * NANO + 1);
    assert_int_equal(k->provider_limits->nelts, 2);
    assert_string_equal(plimit_at(k, 0)->provider, "azure");
    assert_string_equal(plimit_at(k, 1)->provider, "openai");
    assert_ptr_not_equal(k->provider_limits, attrs.provider_limits);
    assert_null(ark_key_provider_limit(k, "dropped"));
    assert_string_equal(k->tenant, "acme"); /* not selected */
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_contains(text, " tenant=acme tpm=1000 budget_month=3.000000001 "
                          "tpm@azure=99 rpm@openai=2\n");
    parse_ok(text, p);

    /* The same limits in another order change nothing. */
    pl = &APR_ARRAY_IDX(attrs.provider_limits, 0, ark_provider_limit_t);
    pl->provider = "openai";
    pl->rpm = 2;
    pl->tpm = 0;
    pl = &APR_ARRAY_IDX(attrs.provider_limits, 2, ark_provider_limit_t);
    pl->provider = "azure";
    pl->rpm = 0;
    pl->tpm = 99;
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a", &attrs,
                                        ARK_KEY_SET_LIMITS, &err),
                     APR_SUCCESS);
    assert_false(changed);
    assert_string_equal(plimit_at(k, 0)->provider, "azure");

    /* Invalid values: nothing changes, not even the valid fields. */
    attrs.tenant = "other";
    attrs.limits.rpm = -1;
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a", &attrs,
                                        ARK_KEY_SET_LIMITS | ARK_KEY_SET_TENANT,
                                        &err),
                     APR_EINVAL);
    assert_contains(err, "invalid rpm");
    assert_string_equal(k->tenant, "acme");
    attrs.limits.rpm = 0;
    attrs.limits.concurrency = 1000000000001LL;
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_LIMITS, &err),
        APR_EINVAL);
    attrs.limits.concurrency = 0;
    attrs.limits.budget_day = -5;
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_LIMITS, &err),
        APR_EINVAL);
    attrs.limits.budget_day = 0;
    pl->provider = "bad name";
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_LIMITS, &err),
        APR_EINVAL);
    assert_string_equal(err, "provider limit 3: invalid provider name "
                             "(expected 1-64 characters of A-Z a-z 0-9 . _ "
                             "-)");
    pl->provider = NULL;
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_LIMITS, &err),
        APR_EINVAL);
    pl->provider = "openai";
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_LIMITS, &err),
        APR_EINVAL);
    assert_string_equal(err, "provider limit 3 repeats the provider of "
                             "provider limit 1");
    pl->provider = "azure";
    pl->tpm = -1;
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_LIMITS, &err),
        APR_EINVAL);
    pl->tpm = 99;
    for (i = 0; i < ARK_KEY_PROVIDER_LIMITS_MAX; i++) {
        pl = apr_array_push(attrs.provider_limits);
        pl->provider = apr_psprintf(p, "p%d", i);
        pl->rpm = 1;
        pl->tpm = 0;
    }
    assert_int_equal(
        ark_keys_set_attrs(NULL, ring, "a", &attrs, ARK_KEY_SET_LIMITS, &err),
        APR_EINVAL);
    assert_string_equal(err, "limits towards more than 16 providers");
    assert_int_equal(k->limits.tpm, 1000);
    assert_int_equal(k->provider_limits->nelts, 2);

    /* Back to none: NULL and empty arrays both mean none. */
    ark_key_init(&attrs);
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a", &attrs,
                                        ARK_KEY_SET_LIMITS, &err),
                     APR_SUCCESS);
    assert_true(changed);
    assert_int_equal(k->limits.tpm, 0);
    assert_null(k->provider_limits);
    attrs.provider_limits = apr_array_make(p, 1, sizeof(ark_provider_limit_t));
    assert_int_equal(ark_keys_set_attrs(&changed, ring, "a", &attrs,
                                        ARK_KEY_SET_LIMITS, &err),
                     APR_SUCCESS);
    assert_false(changed);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    assert_contains(text, " tenant=acme\n");
}

/* Found by fuzzing: a comment line ending in extra CRs changed on every
 * rewrite ("#\r\r" read back as "#\r", then "#"). Format must be a fixed
 * point after one parse. */
static void test_80_comment_trailing_cr_is_stable(void **state)
{
    apr_pool_t *p = *state;
    static const char text[] = "#\r\r\n# note \r\r\r\n";
    ark_keyring_t *r1, *r2;
    const char *t1, *t2, *err = NULL;

    assert_int_equal(ark_keys_parse(&r1, text, sizeof(text) - 1, &err, p),
                     APR_SUCCESS);
    assert_int_equal(ark_keys_format(&t1, r1, p), APR_SUCCESS);
    assert_int_equal(ark_keys_parse(&r2, t1, strlen(t1), &err, p),
                     APR_SUCCESS);
    assert_int_equal(ark_keys_format(&t2, r2, p), APR_SUCCESS);
    assert_string_equal(t1, t2);
    assert_null(strchr(t1, '\r'));
}

static void test_79_add_with_limits_and_previous(void **state)
{
    apr_pool_t *p = *state;
    ark_keyring_t *ring, *parsed;
    const ark_key_t *added;
    ark_key_t key;
    ark_provider_limit_t *pl;
    const char *err, *text;
    char name[16], secret[32];
    int i, prev;

    assert_int_equal(ark_keys_make(&ring, p), APR_SUCCESS);
    ark_key_init(&key);
    key.name = "a";
    ark_keys_hash(key.hash, "new", 3);
    key.limits.rpm = 60;
    key.limits.budget_day = NANO;
    key.provider_limits = apr_array_make(p, 2, sizeof(ark_provider_limit_t));
    pl = apr_array_push(key.provider_limits);
    pl->provider = "openai";
    pl->rpm = 0;
    pl->tpm = 7;
    key.has_previous = 1;
    ark_keys_hash(key.previous_hash, "old", 3);
    key.previous_until = apr_time_from_sec(1795000000) + 999999;
    assert_int_equal(ark_keys_add(&added, ring, &key, &err), APR_SUCCESS);
    assert_int_equal(added->limits.rpm, 60);
    assert_int_equal(plimit_at(added, 0)->tpm, 7);
    assert_ptr_not_equal(added->provider_limits, key.provider_limits);
    assert_true(added->previous_until == apr_time_from_sec(1795000000));
    assert_ptr_equal(ark_keys_lookup_ex(ring, "old", 3, &prev), added);
    assert_int_equal(prev, 1);
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    parsed = parse_ok(text, p);
    assert_int_equal(ark_keys_at(parsed, 0)->limits.budget_day, NANO);

    /* A previous hash in use, or the key's own, is refused. */
    key.name = "b";
    ark_keys_hash(key.hash, "b", 1);
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EEXIST);
    assert_contains(err, "key 'a' already has the previous hash");
    ark_keys_hash(key.previous_hash, "b", 1);
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    key.has_previous = 0;
    ark_keys_hash(key.hash, "old", 3);
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EEXIST);
    assert_string_equal(err, "key 'a' already has this previous hash");
    key.limits.rpm = -2;
    ark_keys_hash(key.hash, "b", 1);
    assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_EINVAL);
    assert_int_equal(ark_keys_count(ring), 1);

    /* Many rotated keys: both digests of each survive index growth. */
    ark_key_init(&key);
    for (i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "k%d", i);
        key.name = name;
        snprintf(secret, sizeof(secret), "cur-%d", i);
        ark_keys_hash(key.hash, secret, strlen(secret));
        snprintf(secret, sizeof(secret), "old-%d", i);
        ark_keys_hash(key.previous_hash, secret, strlen(secret));
        key.has_previous = i % 2;
        assert_int_equal(ark_keys_add(NULL, ring, &key, &err), APR_SUCCESS);
    }
    for (i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "k%d", i);
        snprintf(secret, sizeof(secret), "cur-%d", i);
        added = ark_keys_lookup_ex(ring, secret, strlen(secret), &prev);
        assert_non_null(added);
        assert_string_equal(added->name, name);
        assert_int_equal(prev, 0);
        snprintf(secret, sizeof(secret), "old-%d", i);
        added = ark_keys_lookup_ex(ring, secret, strlen(secret), &prev);
        if (i % 2) {
            assert_non_null(added);
            assert_string_equal(added->name, name);
            assert_int_equal(prev, 1);
            assert_null(ark_keys_lookup(ring, secret, strlen(secret)));
        }
        else {
            assert_null(added);
        }
    }
    /* Removing keys takes both their digests out of the index. */
    for (i = 0; i < 1000; i += 3) {
        snprintf(name, sizeof(name), "k%d", i);
        assert_int_equal(ark_keys_remove(ring, name), APR_SUCCESS);
        snprintf(secret, sizeof(secret), "old-%d", i);
        assert_null(ark_keys_lookup_ex(ring, secret, strlen(secret), &prev));
        snprintf(secret, sizeof(secret), "cur-%d", i);
        assert_null(ark_keys_lookup_ex(ring, secret, strlen(secret), &prev));
    }
    assert_int_equal(ark_keys_format(&text, ring, p), APR_SUCCESS);
    parsed = parse_ok(text, p);
    assert_int_equal(ark_keys_count(parsed), ark_keys_count(ring));
    assert_non_null(ark_keys_lookup_ex(parsed, "old-1", 5, &prev));
    assert_int_equal(prev, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(test_10_parse_defaults),
        ARK_TEST(test_11_parse_all_attributes),
        ARK_TEST(test_12_parse_crlf_comments_blank),
        ARK_TEST(test_13_parse_empty_and_comment_only),
        ARK_TEST(test_14_parse_uses_len_not_nul),
        ARK_TEST(test_15_parse_priority_and_tags),
        ARK_TEST(test_20_parse_errors),
        ARK_TEST(test_21_parse_error_line_numbers),
        ARK_TEST(test_22_parse_duplicates),
        ARK_TEST(test_23_parse_nul_byte),
        ARK_TEST(test_24_parse_errors_do_not_leak),
        ARK_TEST(test_25_tags_limits),
        ARK_TEST(test_30_lookup),
        ARK_TEST(test_31_allows_model),
        ARK_TEST(test_32_validators),
        ARK_TEST(test_40_secret_format),
        ARK_TEST(test_41_secret_uniqueness),
        ARK_TEST(test_42_hash_vectors),
        ARK_TEST(test_43_timestamp),
        ARK_TEST(test_50_format_round_trip),
        ARK_TEST(test_51_format_header),
        ARK_TEST(test_52_add),
        ARK_TEST(test_53_set_enabled_and_remove),
        ARK_TEST(test_54_set_attrs),
        ARK_TEST(test_55_key_init),
        ARK_TEST(test_60_load),
        ARK_TEST(test_61_scale_10k),
        ARK_TEST(test_62_check_mode),
        ARK_TEST(test_70_parse_limits),
        ARK_TEST(test_71_parse_previous),
        ARK_TEST(test_72_parse_limit_errors),
        ARK_TEST(test_73_parse_duplicates_and_hashes),
        ARK_TEST(test_74_limit_errors_do_not_leak),
        ARK_TEST(test_75_format_round_trip_limits),
        ARK_TEST(test_76_rotate),
        ARK_TEST(test_77_set_tenant),
        ARK_TEST(test_78_set_attrs_limits),
        ARK_TEST(test_79_add_with_limits_and_previous),
        ARK_TEST(test_80_comment_trailing_cr_is_stable),
    };

    return ARK_TEST_RUN("ark_keys", tests);
}
