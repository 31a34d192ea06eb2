/* Redaction of secrets and personal data in text bound for a log.
 *
 * Request and response bodies are never logged unless an administrator
 * asks for it, and then they go through ark_redact first: every secret
 * (API keys, bearer tokens, JWTs, passwords and other credential
 * assignments, PEM private keys, URL passwords) and every piece of
 * personal data found (emails, phone numbers, payment card numbers,
 * Chinese resident ID numbers, US social security numbers, IPv4 and IPv6
 * addresses) is replaced by a token such as "[EMAIL_1]". Within one
 * ark_redact_t (one log line: the request body and the answer) the same
 * value always becomes the same token, so a reader can still see that the
 * address in the answer is the one in the question. docs/redaction.md
 * lists the exact rules, the precedence between kinds and the known
 * false positives and negatives.
 *
 * The text is usually JSON. A redacted JSON text is still JSON: tokens
 * hold only [A-Z0-9_[]] characters, a replaced stretch never holds a raw
 * '"' and never starts or ends inside a backslash escape or a UTF-8
 * sequence, and a bare JSON number replaced (a card number written as a
 * number) becomes a quoted token.
 *
 * The scanners are hand-written and linear in the length of the text
 * (no regular expressions, no backtracking); any bytes are accepted,
 * invalid UTF-8 and NULs included. A call allocates 3 to 7 bytes of
 * scratch per input byte (7 for a text that is all one-digit numbers) in
 * a subpool destroyed before it returns.
 *
 * Pure C and APR, no httpd headers. An ark_redact_t is not thread-safe:
 * use one per request.
 */
#ifndef ARK_REDACT_H
#define ARK_REDACT_H

#include <apr_pools.h>

/* What a replaced value was. The token of a value of kind k is
 * "[" ark_redact_kind_label(k) "_" n "]", n counting from 1 per kind in
 * the order values are first met by one ark_redact_t. */
typedef enum {
    ARK_REDACT_SECRET = 0,  /* [SECRET_n]: keys, tokens, passwords, PEM */
    ARK_REDACT_EMAIL,       /* [EMAIL_n] */
    ARK_REDACT_PHONE,       /* [PHONE_n] */
    ARK_REDACT_CARD,        /* [CARD_n]: Luhn-valid payment card number */
    ARK_REDACT_CN_ID,       /* [CN_ID_n]: Chinese resident ID number */
    ARK_REDACT_SSN,         /* [SSN_n]: US social security number */
    ARK_REDACT_IP,          /* [IP_n]: IPv4 or IPv6 address */
    ARK_REDACT_KINDS        /* number of kinds */
} ark_redact_kind_t;

/* What one call replaced: occurrences per kind (two occurrences of one
 * value count twice). */
typedef struct {
    apr_size_t count[ARK_REDACT_KINDS];
    apr_size_t total;
} ark_redact_stats_t;

/* Per log line: the value-to-token map. */
typedef struct ark_redact_t ark_redact_t;

/* A new, empty redactor. Everything it and ark_redact return comes from
 * p and lives as long as p. */
ark_redact_t *ark_redact_make(apr_pool_t *p);

/* Returns a redacted copy of the len bytes at text (text may be NULL when
 * len is 0): a new NUL-terminated string from the pool given to
 * ark_redact_make, also when nothing was replaced. Its length (which
 * can hold NULs when the text did) is put in *out_len and what was
 * replaced in *stats (set, not added to), each if not NULL. Values met
 * by earlier calls on r keep their token. Never fails. */
const char *ark_redact(ark_redact_t *r, const char *text, apr_size_t len,
                       apr_size_t *out_len, ark_redact_stats_t *stats);

/* The distinct values r has replaced so far, all kinds together. */
apr_size_t ark_redact_distinct(const ark_redact_t *r);

/* The token label of kind ("SECRET", "EMAIL", "PHONE", "CARD", "CN_ID",
 * "SSN", "IP"), a static string; NULL for a value outside the enum. */
const char *ark_redact_kind_label(ark_redact_kind_t kind);

/* The kind's name for metric labels and configuration: the label in lower
 * case ("secret", "email", ..., "cn_id", "ssn", "ip"); static; NULL for a
 * value outside the enum. */
const char *ark_redact_kind_name(ark_redact_kind_t kind);

#endif /* ARK_REDACT_H */
