/* Redaction of secrets and personal data. See ark_redact.h; the rules
 * are described for administrators in docs/redaction.md.
 *
 * One call runs in three steps:
 *   1 classify  one pass gives every byte a set of class bits (digit, key
 *               character, email local part, ...). The bytes of a
 *               backslash escape ("\n", "\"", "\u00e9") get no character
 *               class, only C_ESC on the backslash: every scanner sees an
 *               escape as a separator, so no match starts or ends inside
 *               one. C_INSTR marks bytes inside a "..." string. The same
 *               pass lists where runs of digits start, for the number
 *               scanners; ark_json_scan tells whether the text is JSON.
 *   2 detect    one scanner per family, in precedence order. Each scanner
 *               is a single forward walk (the email scanner also looks
 *               back from an '@', over bytes no other '@' looks at) whose
 *               work per start position is bounded or consumes what it
 *               reads, so a call is linear in the text. A match found is
 *               offered and kept only if none of its bytes is in a match
 *               kept before (a byte map): the earlier family wins every
 *               overlap. In a JSON text a match must also lie within one
 *               string, or be one bare number (keeps_structure). The
 *               order is
 *                   PEM private key > other secrets > email > Chinese ID
 *                   > card > SSN > phone > IPv6 > IPv4
 *               so that "password=alice@example.com" is one secret, an
 *               email whose local part is a phone number is an email, and
 *               an 18-digit number that is both a valid ID and Luhn-valid
 *               is an ID.
 *   3 emit      kept matches in text order; each value is normalized
 *               (a phone to its national digits, an email to lower case,
 *               an IPv6 address to its 8 groups) and looked up in the
 *               redactor's map, or given the next number of its kind; the
 *               output is the text with every match replaced.
 *
 * Worked example, the JSON text
 *     {"content":"mail Bob@Example.com, card 4111 1111 1111 1111"}
 * step 2 finds the email at 17..32 and the card at 39..58 (Luhn-valid,
 * groups of 4); step 3 keys them "bob@example.com" and "4111111111111111"
 * and gives
 *     {"content":"mail [EMAIL_1], card [CARD_1]"}
 * A later "bob@example.COM" in the answer is [EMAIL_1] again.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "ark_jsonscan.h"
#include "ark_redact.h"

struct ark_redact_t {
    apr_pool_t *pool;
    apr_hash_t *tokens;                 /* kind byte + value -> token */
    unsigned next[ARK_REDACT_KINDS];    /* numbers given so far */
};

static const char *const kind_labels[ARK_REDACT_KINDS] = {
    "SECRET", "EMAIL", "PHONE", "CARD", "CN_ID", "SSN", "IP",
};

static const char *const kind_names[ARK_REDACT_KINDS] = {
    "secret", "email", "phone", "card", "cn_id", "ssn", "ip",
};

/* ------------------------------------------------------ byte classes */

enum {
    C_DIGIT = 1 << 0,
    C_ALPHA = 1 << 1,
    C_HEX = 1 << 2,
    C_UPPER = 1 << 3,       /* A-Z */
    C_KEY = 1 << 4,         /* [A-Za-z0-9_-]: key names, key bodies */
    C_LOCAL = 1 << 5,       /* [A-Za-z0-9._%+-]: email local part */
    C_DOMAIN = 1 << 6,      /* [A-Za-z0-9.-] */
    C_B64 = 1 << 7,         /* [A-Za-z0-9._~+/=-]: RFC 6750 b64token */
    C_VALUE = 1 << 8,       /* a byte of an unquoted assignment value */
    C_SPACE = 1 << 9,       /* ' ', '\t' */
    C_USER = 1 << 10,       /* RFC 3986 userinfo, ':' included */
    C_PLAIN = 1 << 11,      /* not part of a backslash escape */
    C_ESC = 1 << 12,        /* the backslash starting an escape */
    C_INSTR = 1 << 13       /* inside a "..." string */
};
#define C_ALNUM (C_DIGIT | C_ALPHA)

/* The classes of byte c outside escapes, as a constant expression so
 * that the table below is built by the compiler. */
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_UPPER(c) ((c) >= 'A' && (c) <= 'Z')
#define IS_ALPHA(c) (IS_UPPER(c) || ((c) >= 'a' && (c) <= 'z'))
#define IS_ALNUM(c) (IS_DIGIT(c) || IS_ALPHA(c))
#define IS_HEX(c) \
    (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define IS_SUBDELIM(c) \
    ((c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' \
     || (c) == ')' || (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' \
     || (c) == '=')
#define ENDS_VALUE(c) \
    ((c) == '"' || (c) == '\'' || (c) == ',' || (c) == ';' || (c) == '&' \
     || (c) == ')' || (c) == '}' || (c) == ']' || (c) == '>' || (c) == '<' \
     || (c) == '\\')
#define CLASS_OF(c) (C_PLAIN \
    | (IS_DIGIT(c) ? C_DIGIT : 0) \
    | (IS_ALPHA(c) ? C_ALPHA : 0) \
    | (IS_HEX(c) ? C_HEX : 0) \
    | (IS_UPPER(c) ? C_UPPER : 0) \
    | (IS_ALNUM(c) || (c) == '_' || (c) == '-' ? C_KEY : 0) \
    | (IS_ALNUM(c) || (c) == '.' || (c) == '_' || (c) == '%' || (c) == '+' \
       || (c) == '-' ? C_LOCAL : 0) \
    | (IS_ALNUM(c) || (c) == '.' || (c) == '-' ? C_DOMAIN : 0) \
    | (IS_ALNUM(c) || (c) == '.' || (c) == '_' || (c) == '~' || (c) == '+' \
       || (c) == '/' || (c) == '=' || (c) == '-' ? C_B64 : 0) \
    | ((c) >= 0x80 || ((c) > 0x20 && (c) < 0x7f && !ENDS_VALUE(c)) \
       ? C_VALUE : 0) \
    | ((c) == ' ' || (c) == '\t' ? C_SPACE : 0) \
    | (IS_ALNUM(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' \
       || (c) == '%' || (c) == ':' || IS_SUBDELIM(c) ? C_USER : 0))
#define CLASS4(c) \
    CLASS_OF(c), CLASS_OF((c) + 1), CLASS_OF((c) + 2), CLASS_OF((c) + 3)
#define CLASS16(c) CLASS4(c), CLASS4((c) + 4), CLASS4((c) + 8), \
    CLASS4((c) + 12)
#define CLASS64(c) CLASS16(c), CLASS16((c) + 16), CLASS16((c) + 32), \
    CLASS16((c) + 48)

static const apr_uint16_t class_table[256] = {
    CLASS64(0), CLASS64(64), CLASS64(128), CLASS64(192)
};

/* ------------------------------------------------------------ scanning */

typedef struct {
    apr_size_t start, end;  /* the replaced bytes */
    int kind;
    int drop;               /* phones: leading digits that are a prefix
                             * (00 86, 86, 1), not part of the identity */
} span_t;

typedef struct {
    const unsigned char *s;
    apr_size_t n;
    apr_uint16_t *cls;      /* n class sets */
    unsigned char *taken;   /* n flags: byte in a kept match */
    apr_array_header_t *spans;  /* span_t, kept matches */
    apr_size_t *runs;       /* where the runs of digits start, ascending */
    apr_size_t nruns;
    int json;               /* the text is a JSON document */
} scan_t;

static unsigned cl(const scan_t *sc, apr_size_t i)
{
    return i < sc->n ? sc->cls[i] : 0;
}

/* The class set of the byte before i; none at the start. */
static unsigned cl_before(const scan_t *sc, apr_size_t i)
{
    return i > 0 ? sc->cls[i - 1] : 0;
}

/* Whether byte i is ch, not part of an escape. */
static int is(const scan_t *sc, apr_size_t i, int ch)
{
    return i < sc->n && sc->s[i] == ch && (sc->cls[i] & C_PLAIN);
}

static int is_digit(const scan_t *sc, apr_size_t i)
{
    return (cl(sc, i) & C_DIGIT) != 0;
}

/* The end of the run of bytes with a class in mask starting at i. */
static apr_size_t run(const scan_t *sc, apr_size_t i, unsigned mask)
{
    while (i < sc->n && (sc->cls[i] & mask)) {
        i++;
    }
    return i;
}

/* As run, but looking at max bytes at most. */
static apr_size_t run_upto(const scan_t *sc, apr_size_t i, unsigned mask,
                           apr_size_t max)
{
    apr_size_t end = sc->n - i > max ? i + max : sc->n;

    while (i < end && (sc->cls[i] & mask)) {
        i++;
    }
    return i;
}

/* Whether the len bytes at i are lit. */
static int lit_at(const scan_t *sc, apr_size_t i, const char *lit,
                  apr_size_t len)
{
    return i <= sc->n && sc->n - i >= len && !memcmp(sc->s + i, lit, len);
}
#define LIT_AT(sc, i, lit) lit_at((sc), (i), (lit), sizeof(lit) - 1)

/* The length of the escape at i (a backslash): "\uXXXX" is 6 bytes, any
 * other is 2, a backslash ending the text is 1. */
static apr_size_t esc_len(const unsigned char *s, apr_size_t n,
                          apr_size_t i)
{
    apr_size_t k;

    if (i + 1 >= n) {
        return 1;
    }
    if (s[i + 1] != 'u' || n - i < 6) {
        return 2;
    }
    for (k = i + 2; k < i + 6; k++) {
        if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')
              || (s[k] >= 'A' && s[k] <= 'F'))) {
            return 2;
        }
    }
    return 6;
}

static void classify(scan_t *sc)
{
    const unsigned char *s = sc->s;
    apr_uint16_t *cls = sc->cls;
    apr_size_t i = 0, k, n = sc->n, nruns = 0;
    unsigned in_str = 0, prev = 0;

    sc->json = ark_json_scan((const char *)s, n, NULL, 0, NULL, NULL)
               == APR_SUCCESS;
    while (i < n) {
        unsigned char b = s[i];
        unsigned v;

        if (b == '\\') {
            apr_size_t len = esc_len(s, n, i);

            for (k = i; k < i + len; k++) {
                cls[k] = (apr_uint16_t)in_str;
            }
            cls[i] |= C_ESC;
            i += len;
            prev = 0;
            continue;
        }
        v = class_table[b] | in_str;
        cls[i] = (apr_uint16_t)v;
        if ((v & C_DIGIT) && !(prev & C_DIGIT)) {
            sc->runs[nruns++] = i;
        }
        prev = v;
        if (b == '"') {
            in_str ^= C_INSTR;
        }
        i++;
    }
    sc->nruns = nruns;
}

/* Whether replacing start..end keeps the text's structure: it holds no
 * unescaped '"', cuts no escape in two, and in a JSON text lies wholly
 * inside one string or wholly outside strings as one bare word (a number:
 * the token is then quoted). The scanners only find such matches; this
 * is the last line of defence for the promise that JSON stays JSON. */
static int keeps_structure(const scan_t *sc, apr_size_t start,
                           apr_size_t end)
{
    unsigned in = sc->cls[start] & C_INSTR;
    apr_size_t k;

    if (!(sc->cls[start] & (C_PLAIN | C_ESC))
        || (end < sc->n && !(sc->cls[end] & (C_PLAIN | C_ESC)))) {
        return 0;
    }
    for (k = start; k < end; k++) {
        unsigned c = sc->cls[k];
        unsigned char b = sc->s[k];

        if (b == '"' && (c & C_PLAIN)) {
            return 0;
        }
        if (sc->json && ((c & C_INSTR) != in
                         || (!in && !(c & C_ALNUM) && b != '.' && b != '+'
                             && b != '-' && b != '_'))) {
            return 0;
        }
    }
    return 1;
}

/* Keeps the match start..end of kind unless a byte of it is in a match
 * kept before (or keeps_structure refuses it). Returns whether it was
 * kept. */
static int offer(scan_t *sc, apr_size_t start, apr_size_t end, int kind,
                 int drop)
{
    span_t *sp;

    if (end <= start || end > sc->n
        || memchr(sc->taken + start, 1, end - start)
        || !keeps_structure(sc, start, end)) {
        return 0;
    }
    memset(sc->taken + start, 1, end - start);
    sp = apr_array_push(sc->spans);
    sp->start = start;
    sp->end = end;
    sp->kind = kind;
    sp->drop = drop;
    return 1;
}

/* Whether a number may start at i: not inside a word ("x1234"), a
 * decimal ("3.1415"), a dash-joined chain ("12-3456") or after '+'
 * (international phones are found from the '+'); nor, in JSON outside a
 * string, after the '-' of a negative number, which a quoted token could
 * not follow. An escape before counts as a separator. */
static int num_left_ok(const scan_t *sc, apr_size_t i)
{
    unsigned c = cl_before(sc, i);
    unsigned char b;

    if (i == 0 || !(c & C_PLAIN)) {
        return 1;
    }
    b = sc->s[i - 1];
    if ((c & C_ALNUM) || b == '_' || b == '+') {
        return 0;
    }
    if ((b == '.' || b == '-') && (cl_before(sc, i - 1) & C_DIGIT)) {
        return 0;
    }
    if (b == '-' && sc->json && !(c & C_INSTR)) {
        return 0;
    }
    return 1;
}

/* Whether a number may end at e: not followed by a letter, a digit, '_'
 * or a '.' or '-' and a digit ("13812345678.5", "555-123-4567-8"). */
static int num_right_ok(const scan_t *sc, apr_size_t e)
{
    unsigned c = cl(sc, e);

    if (e >= sc->n || !(c & C_PLAIN)) {
        return 1;
    }
    if ((c & C_ALNUM) || sc->s[e] == '_') {
        return 0;
    }
    if ((sc->s[e] == '.' || sc->s[e] == '-') && is_digit(sc, e + 1)) {
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------- PEM private keys */

/* "-----BEGIN <label>PRIVATE KEY-----" up to the end of its END line; a
 * block without an END line (a cut text) runs up to the next unescaped
 * '"' or the end of the text, so that a JSON string holding it stays a
 * string. Public keys and certificates are not secrets. */
static void scan_pem(scan_t *sc)
{
    const unsigned char *s = sc->s, *m;
    apr_size_t i = 0, n = sc->n, j, k, e;

    while (i < n && (m = memchr(s + i, '-', n - i)) != NULL) {
        i = (apr_size_t)(m - s);
        if (!LIT_AT(sc, i, "-----BEGIN ")) {
            i++;
            continue;
        }
        j = i + 11;
        for (k = j; k < n && k - j < 64
                    && ((sc->cls[k] & (C_UPPER | C_DIGIT)) || s[k] == ' ');
             k++) {
        }
        if (k - j < 11 || !LIT_AT(sc, k, "-----")
            || memcmp(s + k - 11, "PRIVATE KEY", 11)) {
            i++;
            continue;
        }
        for (e = k + 5; e < n; e++) {
            if (is(sc, e, '"')) {
                break;
            }
            if (s[e] == '-' && LIT_AT(sc, e, "-----END ")) {
                e += 9;
                while (e < n && ((sc->cls[e] & (C_UPPER | C_DIGIT))
                                 || s[e] == ' ')) {
                    e++;
                }
                if (LIT_AT(sc, e, "-----")) {
                    e += 5;
                }
                break;
            }
        }
        offer(sc, i, e, ARK_REDACT_SECRET, 0);
        i = e;
    }
}

/* ------------------------------------------------------------- secrets */

/* Key formats known by their prefix. The whole run of key characters
 * ([A-Za-z0-9_-]) starting with the prefix is the secret, if its length
 * is within [min, max] (max 0: no bound); `upper`: the rest is [A-Z0-9]
 * only. */
#define KF(prefix, min, max, upper) \
    {prefix, sizeof(prefix) - 1, min, max, upper}
static const struct {
    const char *prefix;
    apr_size_t plen, min, max;
    int upper;
} key_formats[] = {
    /* OpenAI (sk-proj-), Anthropic (sk-ant-), Ark's own (sk-ark-), ... */
    KF("sk-", 23, 0, 0),
    KF("sk_live_", 24, 0, 0),   /* Stripe */
    KF("sk_test_", 24, 0, 0),
    KF("rk_live_", 24, 0, 0),
    KF("rk_test_", 24, 0, 0),
    KF("AIza", 39, 39, 0),      /* Google API key */
    KF("AKIA", 20, 20, 1),      /* AWS access key id */
    KF("ASIA", 20, 20, 1),      /* AWS temporary access key id */
    KF("ghp_", 24, 0, 0),       /* GitHub tokens */
    KF("gho_", 24, 0, 0),
    KF("ghu_", 24, 0, 0),
    KF("ghs_", 24, 0, 0),
    KF("ghr_", 24, 0, 0),
    KF("github_pat_", 31, 0, 0),
    KF("glpat-", 26, 0, 0),     /* GitLab */
    KF("xoxb-", 15, 0, 0),      /* Slack */
    KF("xoxa-", 15, 0, 0),
    KF("xoxp-", 15, 0, 0),
    KF("xoxr-", 15, 0, 0),
    KF("xoxs-", 15, 0, 0),
    KF("hf_", 23, 0, 0),        /* Hugging Face */
    KF("gsk_", 24, 0, 0),       /* Groq */
    KF("r8_", 23, 0, 0),        /* Replicate */
    KF("pplx-", 25, 0, 0),      /* Perplexity */
    KF("xai-", 24, 0, 0),       /* xAI */
};

static int try_key_format(scan_t *sc, apr_size_t i, apr_size_t j)
{
    apr_size_t f, k, len = j - i, plen;

    if (len < 15) {
        return 0;       /* shorter than any format: most words */
    }
    for (f = 0; f < sizeof(key_formats) / sizeof(key_formats[0]); f++) {
        plen = key_formats[f].plen;
        if (key_formats[f].prefix[0] != sc->s[i] || len < key_formats[f].min
            || (key_formats[f].max && len > key_formats[f].max)
            || memcmp(sc->s + i, key_formats[f].prefix, plen)) {
            continue;
        }
        if (key_formats[f].upper) {
            for (k = i + plen; k < j; k++) {
                if (!(sc->cls[k] & (C_UPPER | C_DIGIT))) {
                    return 0;
                }
            }
        }
        return offer(sc, i, j, ARK_REDACT_SECRET, 0);
    }
    return 0;
}

/* A JWT: "eyJ..." "." "eyJ..." "." signature (possibly empty), base64url
 * parts. i..j is the first part. */
static int try_jwt(scan_t *sc, apr_size_t i, apr_size_t j)
{
    apr_size_t k, e;

    if (j - i < 10 || !LIT_AT(sc, i, "eyJ") || !is(sc, j, '.')
        || !LIT_AT(sc, j + 1, "eyJ")) {
        return 0;
    }
    k = run(sc, j + 1, C_KEY);
    if (k - (j + 1) < 10 || !is(sc, k, '.')) {
        return 0;
    }
    e = run(sc, k + 1, C_KEY);
    return offer(sc, i, e, ARK_REDACT_SECRET, 0);
}

/* "Bearer <token>": the token, if it is at least 8 characters and holds
 * a digit or is at least 20 long (so "Bearer authentication" in prose
 * stays). i..j is the word "Bearer". */
static int try_bearer(scan_t *sc, apr_size_t i, apr_size_t j)
{
    apr_size_t k, t, d;
    int digit = 0;

    if (j - i != 6 || strncasecmp((const char *)sc->s + i, "bearer", 6)
        || !(cl(sc, j) & C_SPACE)) {
        return 0;
    }
    k = run(sc, j, C_SPACE);
    t = run(sc, k, C_B64);
    for (d = k; d < t && !digit; d++) {
        digit = (sc->cls[d] & C_DIGIT) != 0;
    }
    if (t - k < 8 || (!digit && t - k < 20)) {
        return 0;
    }
    return offer(sc, k, t, ARK_REDACT_SECRET, 0);
}

#define KEY_NONE 0
#define KEY_SECRET 1
#define KEY_AUTH 2      /* an Authorization header: "Scheme credentials" */

/* Names of secrets, compared in lower case without '_' and '-'. */
#define NAME_SUFFIX 0   /* the name ends with it */
#define NAME_LONGER 1   /* ends with it and is longer */
#define NAME_EXACT 2    /* is it */
#define SN(name, how, key) {name, sizeof(name) - 1, how, key}
static const struct {
    const char *name;
    apr_size_t len;
    int how, key;
} secret_names[] = {
    SN("authorization", NAME_SUFFIX, KEY_AUTH),
    SN("apikey", NAME_SUFFIX, KEY_SECRET),
    SN("secretkey", NAME_SUFFIX, KEY_SECRET),
    SN("accesskey", NAME_SUFFIX, KEY_SECRET),
    SN("privatekey", NAME_SUFFIX, KEY_SECRET),
    SN("signingkey", NAME_SUFFIX, KEY_SECRET),
    SN("encryptionkey", NAME_SUFFIX, KEY_SECRET),
    SN("password", NAME_SUFFIX, KEY_SECRET),
    SN("passwd", NAME_SUFFIX, KEY_SECRET),
    SN("passphrase", NAME_SUFFIX, KEY_SECRET),
    SN("secret", NAME_SUFFIX, KEY_SECRET),
    SN("credential", NAME_SUFFIX, KEY_SECRET),
    SN("credentials", NAME_SUFFIX, KEY_SECRET),
    SN("cookie", NAME_SUFFIX, KEY_SECRET),
    SN("token", NAME_LONGER, KEY_SECRET),   /* not logprobs' "token" */
    SN("pwd", NAME_EXACT, KEY_SECRET),
    SN("pass", NAME_EXACT, KEY_SECRET),
    SN("auth", NAME_EXACT, KEY_SECRET),
};

/* Whether the name i..j names a secret (KEY_SECRET, KEY_AUTH) or not
 * (KEY_NONE): "OPENAI_API_KEY", "x-api-key", "db_password",
 * "client_secret", "access_token" do; "key", "token", "max_tokens" do
 * not. */
static int secret_key(const scan_t *sc, apr_size_t i, apr_size_t j)
{
    char r[16];         /* the last characters, reversed */
    apr_size_t m = 0, k = j, f, l;
    int more = 0;
    unsigned char last = sc->s[j - 1];

    /* every name ends in one of these letters: most words stop here */
    if (last >= 'A' && last <= 'Z') {
        last += 'a' - 'A';
    }
    if (j - i < 3 || !strchr("ydetlsnh_-", last)) {
        return KEY_NONE;
    }
    while (k > i) {
        unsigned char c = sc->s[--k];

        if (c == '_' || c == '-') {
            continue;
        }
        if (m == sizeof(r)) {
            more = 1;
            break;
        }
        r[m++] = (char)((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
    }
    for (f = 0; f < sizeof(secret_names) / sizeof(secret_names[0]); f++) {
        const char *name = secret_names[f].name;

        l = secret_names[f].len;
        if (l > m || r[0] != name[l - 1]
            || (secret_names[f].how == NAME_EXACT && (m != l || more))
            || (secret_names[f].how == NAME_LONGER && m == l && !more)) {
            continue;
        }
        for (k = 1; k < l && r[k] == name[l - 1 - k]; k++) {
        }
        if (k == l) {
            return secret_names[f].key;
        }
    }
    return KEY_NONE;
}

/* An assignment to a secret name, i..j: the name, an optional closing
 * quote (' " or \"), ':' or '=', then the value, which is what is
 * redacted:
 *   "..." / '...' / \"...\"  the quoted text (escapes included whole); a
 *                            quote never closed runs to the end of the
 *                            text (\"... to the next unescaped '"')
 *   otherwise                a run of C_VALUE bytes (no space, quote,
 *                            , ; & ) } ] < > or escape), unless it is
 *                            true, false, null or starts with { or [;
 *                            for an Authorization, "Scheme credentials"
 * *pnext is set past the value when one was found. */
static int try_assignment(scan_t *sc, apr_size_t i, apr_size_t j,
                          apr_size_t *pnext)
{
    apr_size_t k = j, v0, v1, n = sc->n;
    int key;

    if (is(sc, k, '"') || is(sc, k, '\'')) {
        k++;
    }
    else if ((cl(sc, k) & C_ESC) && k + 1 < n && sc->s[k + 1] == '"') {
        k += 2;
    }
    k = run(sc, k, C_SPACE);
    if ((!is(sc, k, ':') && !is(sc, k, '='))
        || (key = secret_key(sc, i, j)) == KEY_NONE) {
        return 0;
    }
    k = run(sc, k + 1, C_SPACE);
    if (is(sc, k, '"')) {
        if (sc->json && !(cl(sc, k + 1) & C_INSTR)) {
            return 0;   /* the quote closes a string: no value here */
        }
        for (v0 = v1 = k + 1; v1 < n && !is(sc, v1, '"'); v1++) {
        }
    }
    else if (is(sc, k, '\'')) {
        for (v0 = v1 = k + 1;
             v1 < n && !is(sc, v1, '\'') && !is(sc, v1, '"'); v1++) {
        }
    }
    else if ((cl(sc, k) & C_ESC) && k + 1 < n && sc->s[k + 1] == '"') {
        v0 = v1 = k + 2;
        while (v1 < n && !is(sc, v1, '"')) {
            if (!(sc->cls[v1] & C_ESC)) {
                v1++;
                continue;
            }
            if (v1 + 1 < n && sc->s[v1 + 1] == '"') {
                break;
            }
            if (v1 + 1 < n && sc->s[v1 + 1] == '\\') {
                /* "\\" escapes, in the inner string, what follows */
                v1 += 2;
                if (v1 < n && (sc->cls[v1] & C_ESC)) {
                    v1 += esc_len(sc->s, n, v1);
                }
                continue;
            }
            v1 += esc_len(sc->s, n, v1);
        }
    }
    else {
        v0 = k;
        if (is(sc, v0, '{') || is(sc, v0, '[')) {
            return 0;
        }
        v1 = run(sc, v0, C_VALUE);
        if ((v1 - v0 == 4 && (!memcmp(sc->s + v0, "true", 4)
                              || !memcmp(sc->s + v0, "null", 4)))
            || (v1 - v0 == 5 && !memcmp(sc->s + v0, "false", 5))) {
            return 0;
        }
        if (key == KEY_AUTH && (cl(sc, v1) & C_SPACE)) {
            apr_size_t c = run(sc, v1, C_SPACE), ce = run(sc, c, C_VALUE);

            if (ce > c) {
                v1 = ce;
            }
        }
    }
    if (v1 <= v0) {
        return 0;
    }
    *pnext = v1;
    return offer(sc, v0, v1, ARK_REDACT_SECRET, 0);
}

/* Every run of key characters is a candidate name: for a key format, a
 * JWT, "Bearer" or a secret assignment. */
static void scan_secrets(scan_t *sc)
{
    apr_size_t i = 0, j, next;

    while (i < sc->n) {
        if (!(sc->cls[i] & C_KEY) || (cl_before(sc, i) & C_KEY)) {
            i++;
            continue;
        }
        j = run(sc, i, C_KEY);
        next = j;
        if (!try_key_format(sc, i, j) && !try_jwt(sc, i, j)
            && !try_bearer(sc, i, j)) {
            try_assignment(sc, i, j, &next);
        }
        i = next > j ? next : j;
    }
}

/* The password of a URL: scheme://user:password@host. */
static void scan_userinfo(scan_t *sc)
{
    const unsigned char *s = sc->s, *m;
    apr_size_t i = 0, k, e, colon, n = sc->n;

    while (i < n && (m = memchr(s + i, ':', n - i)) != NULL) {
        k = (apr_size_t)(m - s);
        i = k + 1;
        if (!is(sc, k, ':') || !is(sc, k + 1, '/') || !is(sc, k + 2, '/')) {
            continue;
        }
        colon = 0;
        for (e = k + 3; e < n && (sc->cls[e] & C_USER); e++) {
            if (!colon && s[e] == ':') {
                colon = e;
            }
        }
        if (colon && is(sc, e, '@')) {
            offer(sc, colon + 1, e, ARK_REDACT_SECRET, 0);
        }
        i = e > i ? e : i;
    }
}

/* --------------------------------------------------------------- email */

/* The end of a domain starting at d0 whose run of domain characters
 * ends at e, or 0: labels of 1..63 characters not starting or ending
 * with '-', at least two of them, the last (the TLD) at least two
 * letters. Trailing parts that are not a TLD are left out ("a@b.com.1"
 * ends after "com"). */
static apr_size_t domain_end(const scan_t *sc, apr_size_t d0, apr_size_t e)
{
    const unsigned char *s = sc->s;
    apr_size_t dot, k, l0;

    for (;;) {
        while (e > d0 && (s[e - 1] == '.' || s[e - 1] == '-')) {
            e--;
        }
        for (dot = e; dot > d0 && s[dot - 1] != '.'; dot--) {
        }
        if (dot == d0) {
            return 0;
        }
        for (k = dot; k < e && (sc->cls[k] & C_ALPHA); k++) {
        }
        if (k == e && e - dot >= 2) {
            break;
        }
        e = dot - 1;
    }
    for (l0 = k = d0; k <= e; k++) {
        if (k == e || s[k] == '.') {
            if (k == l0 || k - l0 > 63 || s[l0] == '-' || s[k - 1] == '-') {
                return 0;
            }
            l0 = k + 1;
        }
    }
    return e;
}

static void scan_email(scan_t *sc)
{
    const unsigned char *s = sc->s, *m;
    apr_size_t i = 0, at, a, e, floor = 0, n = sc->n;

    while (i < n && (m = memchr(s + i, '@', n - i)) != NULL) {
        at = (apr_size_t)(m - s);
        i = at + 1;
        if (!(sc->cls[at] & C_PLAIN)) {
            continue;
        }
        for (a = at; a > floor && (sc->cls[a - 1] & C_LOCAL); a--) {
        }
        while (a < at && s[a] == '.') {
            a++;
        }
        if (a == at) {
            continue;
        }
        e = domain_end(sc, at + 1, run(sc, at + 1, C_DOMAIN));
        if (e && offer(sc, a, e, ARK_REDACT_EMAIL, 0)) {
            floor = i = e;
        }
    }
}

/* ---------------------------------------------------- Chinese ID (18) */

/* Whether the 18 characters at d are a resident ID number: a province
 * code, a birth date from 1900 to 2099 that exists, and the ISO 7064
 * MOD 11-2 check character. */
static int cn_id_valid(const unsigned char *d)
{
    static const int weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3,
                                    7, 9, 10, 5, 8, 4, 2};
    static const char check[] = "10X98765432";
    static const char *const provinces =
        "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
        "50 51 52 53 54 61 62 63 64 65 71 81 82";
    static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
                                 30, 31};
    char prov[3] = {(char)d[0], (char)d[1], 0};
    int year, month, day, k, sum = 0;
    unsigned char last = d[17] == 'x' ? 'X' : d[17];

    if (!strstr(provinces, prov)) {
        return 0;
    }
    year = (d[6] - '0') * 1000 + (d[7] - '0') * 100 + (d[8] - '0') * 10
           + (d[9] - '0');
    month = (d[10] - '0') * 10 + (d[11] - '0');
    day = (d[12] - '0') * 10 + (d[13] - '0');
    if (year < 1900 || year > 2099 || month < 1 || month > 12 || day < 1
        || day > days[month - 1]) {
        return 0;
    }
    if (month == 2 && day == 29
        && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))) {
        return 0;
    }
    for (k = 0; k < 17; k++) {
        sum += (d[k] - '0') * weights[k];
    }
    return check[sum % 11] == last;
}

static void scan_cn_id(scan_t *sc)
{
    apr_size_t i, j, e, x;

    for (x = 0, j = 0; x < sc->nruns; x++) {
        if ((i = sc->runs[x]) < j) {
            continue;   /* inside what was looked at last */
        }
        j = run(sc, i, C_DIGIT);
        e = 0;
        if (j - i == 18) {
            e = j;
        }
        else if (j - i == 17 && (is(sc, j, 'X') || is(sc, j, 'x'))) {
            e = j + 1;
        }
        if (e && num_left_ok(sc, i) && num_right_ok(sc, e)
            && cn_id_valid(sc->s + i)) {
            offer(sc, i, e, ARK_REDACT_CN_ID, 0);
        }
    }
}

/* -------------------------------------------------------------- cards */

static int luhn_valid(const unsigned char *d, int nd)
{
    int k, sum = 0, dbl = 0;

    for (k = nd - 1; k >= 0; k--) {
        int v = d[k] - '0';

        if (dbl) {
            v *= 2;
            if (v > 9) {
                v -= 9;
            }
        }
        sum += v;
        dbl = !dbl;
    }
    return sum % 10 == 0;
}

/* Whether nd digits at d could be a card of a major network by their
 * first digits and length (13 to 19 digits); a number starting with 0,
 * 1, 7, 8 or 9 (a millisecond timestamp, a snowflake id) is not. */
static int card_plausible(const unsigned char *d, int nd)
{
    int two = (d[0] - '0') * 10 + (d[1] - '0');
    int four = two * 100 + (d[2] - '0') * 10 + (d[3] - '0');

    switch (d[0]) {
    case '2':       /* Mastercard 2221-2720 */
        return nd == 16 && four >= 2221 && four <= 2720;
    case '3':       /* Amex, Diners, JCB */
        if (two == 34 || two == 37) {
            return nd == 15;
        }
        if (two == 30 || two == 36 || two == 38 || two == 39) {
            return nd >= 14;
        }
        return two == 35 && nd >= 16;
    case '4':       /* Visa */
    case '5':       /* Mastercard, Maestro */
    case '6':       /* Discover, UnionPay, Maestro */
        return 1;
    default:
        return 0;
    }
}

/* The end of the longest card number starting at i, or 0: 13 to 19
 * digits, contiguous or in groups of 3 to 6 joined by one kind of
 * separator (' ' or '-'), Luhn-valid. A contiguous run longer than 19
 * digits is not a card. */
static apr_size_t card_at(const scan_t *sc, apr_size_t i)
{
    unsigned char d[19];
    apr_size_t pos = i, g, best = 0;
    int nd = 0, groups = 0, sep = 0;

    for (;;) {
        g = run(sc, pos, C_DIGIT);
        if (nd + (g - pos) > 19 || (groups > 0 && (g - pos < 3
                                                   || g - pos > 6))) {
            break;
        }
        memcpy(d + nd, sc->s + pos, g - pos);
        nd += (int)(g - pos);
        groups++;
        if (nd >= 13 && num_right_ok(sc, g) && card_plausible(d, nd)
            && luhn_valid(d, nd)) {
            best = g;
        }
        if (groups == 1 && (g - pos < 3 || g - pos > 6)) {
            break;
        }
        pos = g;
        if ((is(sc, pos, ' ') || is(sc, pos, '-'))
            && (sep == 0 || sep == sc->s[pos]) && is_digit(sc, pos + 1)) {
            sep = sc->s[pos];
            pos++;
            continue;
        }
        break;
    }
    return best;
}

/* A card starts at a number's start, not inside a space-separated chain
 * of digit groups, unless the group before ended a card ("4111...1111
 * 5500...0004", a list). */
static void scan_card(scan_t *sc)
{
    apr_size_t i, j, e, x, last_end = 0;
    int have_last = 0;

    for (x = 0, j = 0; x < sc->nruns; x++) {
        if ((i = sc->runs[x]) < j) {
            continue;   /* inside what was looked at last */
        }
        j = run(sc, i, C_DIGIT);
        if (!num_left_ok(sc, i)) {
            continue;
        }
        if (i >= 2 && is(sc, i - 1, ' ') && (sc->cls[i - 2] & C_DIGIT)
            && !(have_last && last_end == i - 1)) {
            continue;
        }
        e = card_at(sc, i);
        if (e && offer(sc, i, e, ARK_REDACT_CARD, 0)) {
            last_end = e;
            have_last = 1;
            j = e;
        }
    }
}

/* ---------------------------------------------------------------- SSN */

/* ddd-dd-dddd, area not 000, 666 or 9xx, group not 00, serial not
 * 0000. */
static void scan_ssn(scan_t *sc)
{
    const unsigned char *s = sc->s;
    apr_size_t i, j, x;

    for (x = 0, j = 0; x < sc->nruns; x++) {
        if ((i = sc->runs[x]) < j) {
            continue;   /* inside what was looked at last */
        }
        j = run(sc, i, C_DIGIT);
        if (j - i != 3 || !num_left_ok(sc, i) || !is(sc, j, '-')
            || run(sc, j + 1, C_DIGIT) != j + 3 || !is(sc, j + 3, '-')
            || run(sc, j + 4, C_DIGIT) != j + 8 || !num_right_ok(sc, j + 8)) {
            continue;
        }
        if (!memcmp(s + i, "000", 3) || !memcmp(s + i, "666", 3)
            || s[i] == '9' || !memcmp(s + j + 1, "00", 2)
            || !memcmp(s + j + 4, "0000", 4)) {
            continue;
        }
        offer(sc, i, j + 8, ARK_REDACT_SSN, 0);
    }
}

/* -------------------------------------------------------------- phones */

/* International: '+', a first digit 1-9, then digits in groups joined by
 * one ' ', '-' or '.', one group possibly in parentheses ("+1 (555)
 * 123-4567", "+44 (0)20 7946 0958"); 8 to 15 digits in all. */
static void scan_phone_intl(scan_t *sc)
{
    const unsigned char *s = sc->s, *m;
    apr_size_t i = 0, p, pos, last, g, n = sc->n;

    while (i < n && (m = memchr(s + i, '+', n - i)) != NULL) {
        unsigned char d[16];
        int nd = 0, paren = 0, drop = 0;

        p = (apr_size_t)(m - s);
        i = p + 1;
        if (!(sc->cls[p] & C_PLAIN) || (cl_before(sc, p) & C_ALNUM)
            || (p > 0 && (s[p - 1] == '_' || s[p - 1] == '+'))
            || !is_digit(sc, p + 1) || s[p + 1] == '0') {
            continue;
        }
        pos = p + 1;
        last = 0;
        while (nd <= 15) {
            int opened = 0;

            if (is_digit(sc, pos)) {
                g = run(sc, pos, C_DIGIT);
            }
            else if (!paren && is(sc, pos, '(') && is_digit(sc, pos + 1)
                     && is(sc, run(sc, pos + 1, C_DIGIT), ')')) {
                paren = opened = 1;
                pos++;
                g = run(sc, pos, C_DIGIT);
            }
            else {
                break;
            }
            if (g - pos > 15) {
                nd = 16;        /* too long for any phone number */
                break;
            }
            if (nd + (int)(g - pos) <= 15) {
                memcpy(d + nd, s + pos, g - pos);
            }
            nd += (int)(g - pos);
            pos = last = g;
            if (opened) {
                pos = last = pos + 1;   /* the ')' */
                if (is_digit(sc, pos)) {
                    continue;           /* "(555)123-4567" */
                }
            }
            if ((is(sc, pos, ' ') || is(sc, pos, '-') || is(sc, pos, '.'))
                && (is_digit(sc, pos + 1)
                    || (!paren && is(sc, pos + 1, '(')))) {
                pos++;
                continue;
            }
            if (!paren && is(sc, pos, '(')) {
                continue;               /* "+1(555)..." */
            }
            break;
        }
        if (nd < 8 || nd > 15 || !last || !num_right_ok(sc, last)) {
            continue;
        }
        if (nd == 13 && d[0] == '8' && d[1] == '6' && d[2] == '1'
            && d[3] >= '3') {
            drop = 2;   /* +86 mobile: the national number */
        }
        else if (nd == 11 && d[0] == '1') {
            drop = 1;   /* +1: the North American number */
        }
        if (offer(sc, p, last, ARK_REDACT_PHONE, drop)) {
            i = last;
        }
    }
}

/* A Chinese mobile number at i: 1[3-9] and 9 more digits, contiguous
 * (a run of exactly 11) or as 3-4-4 groups joined by one kind of
 * separator (' ' or '-'). Its end, or 0. */
static apr_size_t cn_mobile_at(const scan_t *sc, apr_size_t i)
{
    const unsigned char *s = sc->s;
    apr_size_t j;
    int sep;

    if (!is_digit(sc, i) || s[i] != '1' || !is_digit(sc, i + 1)
        || s[i + 1] < '3') {
        return 0;
    }
    j = run(sc, i, C_DIGIT);
    if (j - i == 11) {
        return num_right_ok(sc, j) ? j : 0;
    }
    if (j - i != 3 || !(is(sc, j, ' ') || is(sc, j, '-'))) {
        return 0;
    }
    sep = s[j];
    if (run(sc, j + 1, C_DIGIT) != j + 5 || !is(sc, j + 5, sep)
        || run(sc, j + 6, C_DIGIT) != j + 10 || !num_right_ok(sc, j + 10)) {
        return 0;
    }
    return j + 10;
}

/* A North American number at i: "(AAA) EEE-NNNN", "(AAA)EEE-NNNN",
 * "AAA-EEE-NNNN" or "AAA.EEE.NNNN" (after the parentheses the last
 * separator may be '-', '.' or ' '), the area code starting with 2-9
 * (the exchange is not checked: "555-123-4567" is what people write).
 * Its end, or 0. Ten digits without separators are not taken
 * (too many other numbers look like that). */
static apr_size_t na_at(const scan_t *sc, apr_size_t i)
{
    const unsigned char *s = sc->s;
    apr_size_t a, e;
    int sep;

    if (is(sc, i, '(')) {
        a = i + 1;
        if (run(sc, a, C_DIGIT) != a + 3 || !is(sc, a + 3, ')')) {
            return 0;
        }
        e = a + 4;
        if (is(sc, e, ' ')) {
            e++;
        }
        if (run(sc, e, C_DIGIT) != e + 3
            || !(is(sc, e + 3, '-') || is(sc, e + 3, '.')
                 || is(sc, e + 3, ' '))) {
            return 0;
        }
    }
    else {
        a = i;
        if (run(sc, a, C_DIGIT) != a + 3
            || !(is(sc, a + 3, '-') || is(sc, a + 3, '.'))) {
            return 0;
        }
        sep = s[a + 3];
        e = a + 4;
        if (run(sc, e, C_DIGIT) != e + 3 || !is(sc, e + 3, sep)) {
            return 0;
        }
    }
    if (s[a] < '2' || run(sc, e + 4, C_DIGIT) != e + 8
        || !num_right_ok(sc, e + 8)) {
        return 0;
    }
    return e + 8;
}

/* National formats from the start of a number: Chinese mobiles (also
 * after 0086 or 86, joined or with one separator) and North American
 * numbers (also after "1-", "1 " or "1."); and North American numbers
 * starting with '('. */
static void scan_phone_national(scan_t *sc)
{
    const unsigned char *s = sc->s, *m;
    apr_size_t i, j, e, x, n = sc->n;

    for (x = 0, j = 0; x < sc->nruns; x++) {
        if ((i = sc->runs[x]) < j) {
            continue;   /* inside what was looked at last */
        }
        apr_size_t g;
        int drop = 0;

        j = run(sc, i, C_DIGIT);
        g = j - i;
        if (!num_left_ok(sc, i)) {
            continue;
        }
        e = cn_mobile_at(sc, i);
        if (!e && (g == 15 || g == 4) && LIT_AT(sc, i, "0086")) {
            drop = 4;
        }
        else if (!e && (g == 13 || g == 2) && LIT_AT(sc, i, "86")) {
            drop = 2;
        }
        if (drop && g == (apr_size_t)drop + 11) {
            e = cn_mobile_at(sc, i + drop) ? j : 0;
        }
        else if (drop && (is(sc, j, ' ') || is(sc, j, '-'))) {
            e = cn_mobile_at(sc, j + 1);
        }
        if (!e && g == 3) {
            drop = 0;
            e = na_at(sc, i);
        }
        if (!e && g == 1 && s[i] == '1'
            && (is(sc, j, '-') || is(sc, j, ' ') || is(sc, j, '.'))) {
            drop = 1;
            e = na_at(sc, j + 1);
        }
        if (e && offer(sc, i, e, ARK_REDACT_PHONE, drop)) {
            j = e;
        }
    }
    for (i = 0; i < n && (m = memchr(s + i, '(', n - i)) != NULL;) {
        i = (apr_size_t)(m - s);
        if ((sc->cls[i] & C_PLAIN) && !(cl_before(sc, i) & C_ALNUM)
            && (e = na_at(sc, i)) != 0 && offer(sc, i, e, ARK_REDACT_PHONE,
                                                0)) {
            i = e;
            continue;
        }
        i++;
    }
}

/* ----------------------------------------------------------------- IP */

/* A dotted quad at i: four numbers 0-255 without leading zeros. Its end,
 * or 0; the address in *v. */
static apr_size_t ipv4_parse(const scan_t *sc, apr_size_t i, apr_uint32_t *v)
{
    apr_size_t pos = i, g;
    int k;

    *v = 0;
    for (k = 0; k < 4; k++) {
        unsigned o = 0;
        apr_size_t d;

        g = run_upto(sc, pos, C_DIGIT, 4);
        if (g == pos || g - pos > 3 || (g - pos > 1 && sc->s[pos] == '0')) {
            return 0;
        }
        for (d = pos; d < g; d++) {
            o = o * 10 + (unsigned)(sc->s[d] - '0');
        }
        if (o > 255) {
            return 0;
        }
        *v = (*v << 8) | o;
        pos = g;
        if (k < 3) {
            if (!is(sc, pos, '.') || !is_digit(sc, pos + 1)) {
                return 0;
            }
            pos++;
        }
    }
    return pos;
}

/* Whether an address may start at i: not inside a word, a dotted or a
 * colon-separated sequence ("1.2.3.4.5", "a:1:2:..."). */
static int ip_left_ok(const scan_t *sc, apr_size_t i)
{
    unsigned c = cl_before(sc, i);

    if (i == 0 || !(c & C_PLAIN)) {
        return 1;
    }
    return !(c & C_ALNUM) && !(sc->s[i - 1] && strchr("_.:", sc->s[i - 1]));
}

/* Whether an address may end at e: not followed by a letter, a digit,
 * '_', a '.' and a digit, or (IPv6) a ':' and a hex digit or another
 * ':'. An IPv4 address may be followed by ":port". */
static int ip_right_ok(const scan_t *sc, apr_size_t e, int v6)
{
    unsigned c = cl(sc, e);

    if (e >= sc->n || !(c & C_PLAIN)) {
        return 1;
    }
    if ((c & C_ALNUM) || sc->s[e] == '_'
        || (sc->s[e] == '.' && is_digit(sc, e + 1))) {
        return 0;
    }
    return !(v6 && sc->s[e] == ':'
             && ((cl(sc, e + 1) & C_HEX) || is(sc, e + 1, ':')));
}

static void scan_ipv4(scan_t *sc)
{
    apr_size_t i, j, e, x;
    apr_uint32_t v;

    for (x = 0, j = 0; x < sc->nruns; x++) {
        if ((i = sc->runs[x]) < j) {
            continue;   /* inside what was looked at last */
        }
        j = run(sc, i, C_DIGIT);
        if (ip_left_ok(sc, i) && (e = ipv4_parse(sc, i, &v)) != 0
            && ip_right_ok(sc, e, 0) && offer(sc, i, e, ARK_REDACT_IP, 0)) {
            j = e;
        }
    }
}

/* An IPv6 address at i: eight groups of 1-4 hex digits, or fewer with
 * one "::", the last two possibly a dotted quad. With "::" it must hold
 * a decimal digit and either three groups or a group of four digits (or
 * the dotted quad), so that "12:30:45", "x[100::200]", "std::map" or
 * "dead::beef" are not addresses (nor is "::1"). Its end, or 0; the
 * groups in g. */
static apr_size_t ipv6_parse(const scan_t *sc, apr_size_t i,
                             apr_uint16_t g[8])
{
    apr_uint16_t grp[8];
    apr_size_t pos = i, h, k;
    int ng = 0, dbl = -1, digit = 0, wide = 0, x;

    if (is(sc, pos, ':')) {
        if (!is(sc, pos + 1, ':')) {
            return 0;
        }
        dbl = 0;
        pos += 2;
    }
    for (;;) {
        unsigned v = 0;

        h = run_upto(sc, pos, C_HEX, 5);
        if (h == pos) {
            break;
        }
        if (h - pos > 4) {
            return 0;
        }
        if (is(sc, h, '.') && is_digit(sc, h + 1)) {
            apr_uint32_t v4;

            if (ng > 6 || (pos = ipv4_parse(sc, pos, &v4)) == 0) {
                return 0;
            }
            grp[ng++] = (apr_uint16_t)(v4 >> 16);
            grp[ng++] = (apr_uint16_t)(v4 & 0xffff);
            digit = wide = 1;
            break;
        }
        if (ng == 8) {
            return 0;
        }
        for (k = pos; k < h; k++) {
            unsigned char c = sc->s[k];

            digit |= c <= '9';
            v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        wide |= h - pos == 4;
        grp[ng++] = (apr_uint16_t)v;
        pos = h;
        if (is(sc, pos, ':') && is(sc, pos + 1, ':')) {
            if (dbl >= 0) {
                return 0;
            }
            dbl = ng;
            pos += 2;
            continue;
        }
        if (is(sc, pos, ':') && (cl(sc, pos + 1) & C_HEX)) {
            pos++;
            continue;
        }
        break;
    }
    if (dbl < 0 ? ng != 8
                : (ng > 7 || !digit || (ng < 3 && !wide))) {
        return 0;
    }
    if (!ip_right_ok(sc, pos, 1)) {
        return 0;
    }
    /* expand "::" */
    for (x = 0; x < 8; x++) {
        g[x] = 0;
    }
    if (dbl < 0) {
        dbl = ng;
    }
    for (x = 0; x < dbl; x++) {
        g[x] = grp[x];
    }
    for (x = dbl; x < ng; x++) {
        g[8 - (ng - x)] = grp[x];
    }
    return pos;
}

/* Every address has a ':' in its first 5 bytes: candidates are found
 * from the ':'s, going back over at most 4 hex digits. */
static void scan_ipv6(scan_t *sc)
{
    const unsigned char *s = sc->s, *m;
    apr_size_t i = 0, c, st, e, n = sc->n;
    apr_uint16_t g[8];

    while (i < n && (m = memchr(s + i, ':', n - i)) != NULL) {
        c = (apr_size_t)(m - s);
        i = c + 1;
        for (st = c; st > 0 && c - st < 5 && (sc->cls[st - 1] & C_HEX);
             st--) {
        }
        if ((sc->cls[c] & C_PLAIN) && c - st <= 4 && ip_left_ok(sc, st)
            && (e = ipv6_parse(sc, st, g)) != 0
            && offer(sc, st, e, ARK_REDACT_IP, 0)) {
            i = e;
        }
    }
}

/* ---------------------------------------------------------------- emit */

static int span_cmp(const void *a, const void *b)
{
    const span_t *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

/* The identity of a value, for the token map: the kind, then the value
 * in a normal form. From tmp; its length in *plen. */
static char *value_key(const scan_t *sc, const span_t *sp, apr_size_t *plen,
                       apr_pool_t *tmp)
{
    const unsigned char *v = sc->s + sp->start;
    apr_size_t len = sp->end - sp->start, k, m = 1;
    char *key = apr_palloc(tmp, len + 64);
    int dropped = 0;

    key[0] = (char)('A' + sp->kind);
    switch (sp->kind) {
    case ARK_REDACT_EMAIL:
        for (k = 0; k < len; k++) {
            key[m++] = (char)((v[k] >= 'A' && v[k] <= 'Z') ? v[k] + 32 : v[k]);
        }
        break;
    case ARK_REDACT_PHONE:
    case ARK_REDACT_CARD:
    case ARK_REDACT_SSN:
    case ARK_REDACT_CN_ID:
        for (k = 0; k < len; k++) {
            if (v[k] >= '0' && v[k] <= '9') {
                if (dropped++ >= sp->drop) {
                    key[m++] = (char)v[k];
                }
            }
            else if (v[k] == 'x' || v[k] == 'X') {
                key[m++] = 'X';
            }
        }
        break;
    case ARK_REDACT_IP:
        if (memchr(v, ':', len)) {
            apr_uint16_t g[8];
            int x;

            ipv6_parse(sc, sp->start, g);
            for (x = 0; x < 8; x++) {
                m += (apr_size_t)apr_snprintf(key + m, 8, "%x:", g[x]);
            }
        }
        else {      /* a dotted quad has one form */
            memcpy(key + 1, v, len);
            m = len + 1;
        }
        break;
    default:
        memcpy(key + 1, v, len);
        m = len + 1;
        break;
    }
    *plen = m;
    return key;
}

/* The token of the value of sp, a new one if it was not met before. */
static const char *token_of(ark_redact_t *r, const scan_t *sc,
                            const span_t *sp, apr_pool_t *tmp)
{
    apr_size_t klen;
    char *key = value_key(sc, sp, &klen, tmp);
    const char *tok = apr_hash_get(r->tokens, key, (apr_ssize_t)klen);

    if (!tok) {
        tok = apr_psprintf(r->pool, "[%s_%u]", kind_labels[sp->kind],
                           ++r->next[sp->kind]);
        apr_hash_set(r->tokens, apr_pmemdup(r->pool, key, klen),
                     (apr_ssize_t)klen, tok);
    }
    return tok;
}

/* Whether the replaced bytes are a bare JSON value (a number outside any
 * string, after ':', ',' or '['), so that the token must be quoted. */
static int needs_quotes(const scan_t *sc, const span_t *sp)
{
    apr_size_t k = sp->start;

    if (!sc->json || (sc->cls[k] & C_INSTR)) {
        return 0;
    }
    while (k > 0 && strchr(" \t\r\n", sc->s[k - 1]) && sc->s[k - 1]) {
        k--;
    }
    return k > 0 && strchr(":,[", sc->s[k - 1]) && sc->s[k - 1];
}

ark_redact_t *ark_redact_make(apr_pool_t *p)
{
    ark_redact_t *r = apr_pcalloc(p, sizeof(*r));

    r->pool = p;
    r->tokens = apr_hash_make(p);
    return r;
}

const char *ark_redact(ark_redact_t *r, const char *text, apr_size_t len,
                       apr_size_t *out_len, ark_redact_stats_t *stats)
{
    apr_pool_t *tmp = NULL;
    scan_t sc;
    span_t *spans;
    const char **toks;
    int *quoted;
    apr_size_t total, pos, k;
    char *out, *o;
    int x;

    if (stats) {
        memset(stats, 0, sizeof(*stats));
    }
    if (!text || len == 0) {
        if (out_len) {
            *out_len = 0;
        }
        return apr_pstrdup(r->pool, "");
    }
    if (apr_pool_create(&tmp, r->pool) != APR_SUCCESS) {
        tmp = r->pool;
    }
    else {
        apr_pool_tag(tmp, "ark_redact");
    }
    sc.s = (const unsigned char *)text;
    sc.n = len;
    sc.cls = apr_palloc(tmp, len * sizeof(*sc.cls));
    sc.taken = apr_pcalloc(tmp, len);
    sc.runs = apr_palloc(tmp, (len / 2 + 1) * sizeof(*sc.runs));
    sc.spans = apr_array_make(tmp, 16, sizeof(span_t));
    classify(&sc);

    /* detection, in precedence order */
    scan_pem(&sc);
    scan_secrets(&sc);
    scan_userinfo(&sc);
    scan_email(&sc);
    scan_cn_id(&sc);
    scan_card(&sc);
    scan_ssn(&sc);
    scan_phone_intl(&sc);
    scan_phone_national(&sc);
    scan_ipv6(&sc);
    scan_ipv4(&sc);

    /* emission, in text order */
    spans = (span_t *)sc.spans->elts;
    qsort(spans, (size_t)sc.spans->nelts, sizeof(span_t), span_cmp);
    toks = apr_palloc(tmp, sizeof(*toks) * (apr_size_t)sc.spans->nelts + 1);
    quoted = apr_palloc(tmp, sizeof(*quoted) * (apr_size_t)sc.spans->nelts
                                 + 1);
    total = len;
    for (x = 0; x < sc.spans->nelts; x++) {
        toks[x] = token_of(r, &sc, &spans[x], tmp);
        quoted[x] = needs_quotes(&sc, &spans[x]);
        total += strlen(toks[x]) + (quoted[x] ? 2 : 0);
        total -= spans[x].end - spans[x].start;
        if (stats) {
            stats->count[spans[x].kind]++;
            stats->total++;
        }
    }
    o = out = apr_palloc(r->pool, total + 1);
    pos = 0;
    for (x = 0; x < sc.spans->nelts; x++) {
        memcpy(o, text + pos, spans[x].start - pos);
        o += spans[x].start - pos;
        if (quoted[x]) {
            *o++ = '"';
        }
        k = strlen(toks[x]);
        memcpy(o, toks[x], k);
        o += k;
        if (quoted[x]) {
            *o++ = '"';
        }
        pos = spans[x].end;
    }
    memcpy(o, text + pos, len - pos);
    o += len - pos;
    *o = '\0';
    if (out_len) {
        *out_len = (apr_size_t)(o - out);
    }
    if (tmp != r->pool) {
        apr_pool_destroy(tmp);
    }
    return out;
}

apr_size_t ark_redact_distinct(const ark_redact_t *r)
{
    return apr_hash_count(r->tokens);
}

const char *ark_redact_kind_label(ark_redact_kind_t kind)
{
    return (unsigned)kind < ARK_REDACT_KINDS ? kind_labels[kind] : NULL;
}

const char *ark_redact_kind_name(ark_redact_kind_t kind)
{
    return (unsigned)kind < ARK_REDACT_KINDS ? kind_names[kind] : NULL;
}
