/* Unit tests for the redaction engine (ark_redact.c).
 *
 * Per kind, values that must be replaced and look-alikes that must stay
 * (a Luhn-invalid card, an ID with a wrong check digit, a version string,
 * a time of day, a long digit run); tokens that are the same for the same
 * value (in any of its written forms) and numbered in order of
 * appearance; Chinese and English text mixed; JSON that stays JSON,
 * checked with jansson on hand-written bodies and on random ones built
 * from tricky pieces; one body holding every kind, none of whose values
 * may survive; random bytes (fixed seeds) for the sanitizers; and the
 * time taken on a 64 KB body and on adversarial ones (printed, never
 * asserted).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <apr_strings.h>
#include <jansson.h>

#include "ark_redact.h"
#include "ark_testutil.h"

/* ------------------------------------------------------------ helpers */

/* in redacted by r; checks that the length reported is right. */
static const char *red(ark_redact_t *r, const char *in,
                       ark_redact_stats_t *st)
{
    apr_size_t len = 0;
    const char *out = ark_redact(r, in, strlen(in), &len, st);

    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    return out;
}

/* in redacted by a fresh redactor must be want. */
static void expect(const char *in, const char *want, apr_pool_t *p)
{
    const char *got = red(ark_redact_make(p), in, NULL);

    if (strcmp(got, want)) {
        fail_msg("redacting  %s\n  gave      %s\n  expected  %s", in, got,
                 want);
    }
}

/* in must come out unchanged. */
static void keep(const char *in, apr_pool_t *p)
{
    expect(in, in, p);
}

/* Each of the n values, put between before and after, must come out as
 * before + token + after. */
static void expect_each(const char *const *values, apr_size_t n,
                        const char *before, const char *after,
                        const char *token, apr_pool_t *p)
{
    apr_size_t k;

    for (k = 0; k < n; k++) {
        expect(apr_pstrcat(p, before, values[k], after, NULL),
               apr_pstrcat(p, before, token, after, NULL), p);
    }
}

/* Each of the n values, put between before and after, must stay. */
static void keep_each(const char *const *values, apr_size_t n,
                      const char *before, const char *after, apr_pool_t *p)
{
    apr_size_t k;

    for (k = 0; k < n; k++) {
        keep(apr_pstrcat(p, before, values[k], after, NULL), p);
    }
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The text must parse as JSON; returns it parsed (pool-owned). */
static json_t *must_parse(const char *text, const char *what, apr_pool_t *p)
{
    return ark_test_json_parse(text, strlen(text), 0, what, p);
}

/* ------------------------------------------------------------ secrets */

static void test_secrets(void **state)
{
    apr_pool_t *p = *state;
    static const char *const keys[] = {
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9o",
        "sk-ant-api03-abcdEFGH1234ijklMNOP5678qrstUVWX90yz-AbCdEfGhIjKl",
        "sk-ark-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa",
        "sk-abcdefghijklmnopqrstuvwxyz012345",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
        "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
        ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    };

    (void)state;
    expect_each(keys, N(keys), "key ", " here", "[SECRET_1]", p);
    expect_each(keys, N(keys), "{\"k\":\"", "\"}", "[SECRET_1]", p);
    /* bearer tokens: the token, not the scheme */
    expect("curl -H 'Authorization: Bearer abc123def456ghi789'",
           "curl -H 'Authorization: [SECRET_1]'", p);
    expect("use Bearer abc123def456ghi789 here",
           "use Bearer [SECRET_1] here", p);
    expect("bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
           "bearer [SECRET_1]", p);
    /* assignments: the value */
    expect("api_key=abc123&x=1", "api_key=[SECRET_1]&x=1", p);
    expect("OPENAI_API_KEY=not-a-known-format",
           "OPENAI_API_KEY=[SECRET_1]", p);
    expect("{\"api_key\": \"plainvalue\"}", "{\"api_key\": \"[SECRET_1]\"}",
           p);
    expect("{\"password\":\"hunter2\",\"user\":\"bob\"}",
           "{\"password\":\"[SECRET_1]\",\"user\":\"bob\"}", p);
    expect("password=hunter2 and pwd: s3cr3t",
           "password=[SECRET_1] and pwd: [SECRET_2]", p);
    expect("X-Api-Key: abcdef", "X-Api-Key: [SECRET_1]", p);
    expect("{'client_secret': 'abc def'}", "{'client_secret': '[SECRET_1]'}",
           p);
    expect("{\"access_token\": \"a\\\"b\"}",
           "{\"access_token\": \"[SECRET_1]\"}", p);
    /* a number in JSON becomes a quoted token */
    expect("{\"pin_password\": 123456}",
           "{\"pin_password\": \"[SECRET_1]\"}", p);
    /* JSON inside a JSON string */
    expect("{\"content\":\"{\\\"api_key\\\": \\\"abc123\\\"}\"}",
           "{\"content\":\"{\\\"api_key\\\": \\\"[SECRET_1]\\\"}\"}", p);
    /* a URL's password */
    expect("redis://admin:pa55word@cache.internal:6379/0",
           "redis://admin:[SECRET_1]@cache.internal:6379/0", p);
    /* PEM private keys, in JSON (escaped newlines) and as text */
    expect("{\"k\":\"-----BEGIN RSA PRIVATE KEY-----\\nMIIEow\\nIBAA\\n"
           "-----END RSA PRIVATE KEY-----\\n\"}",
           "{\"k\":\"[SECRET_1]\\n\"}", p);
    expect("a\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz\n"
           "-----END OPENSSH PRIVATE KEY-----\nz",
           "a\n[SECRET_1]\nz", p);
    /* a block cut short is redacted to the end of its string */
    expect("{\"k\":\"-----BEGIN PRIVATE KEY-----\\nMIIEow\",\"n\":1}",
           "{\"k\":\"[SECRET_1]\",\"n\":1}", p);
}

static void test_secrets_negative(void **state)
{
    apr_pool_t *p = *state;

    keep("Use Bearer authentication with a bearer token.", p);
    keep("sk-short and task-abcdefghijklmnopqrstuvwxyz0123", p);
    keep("AKIAiosfodnn7example and AKIAIOSFODNN7EXAMPLEX", p);
    keep("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Qx", p);
    keep("{\"max_tokens\": 100, \"token\": \"Hello\", \"key\": \"color\"}", p);
    keep("{\"password\": null, \"has_password\": true, \"secret\": false}",
         p);
    keep("{\"password\": \"\", \"api_key\": {\"id\": 3}}", p);
    keep("-----BEGIN PUBLIC KEY-----\nMIIBIj\n-----END PUBLIC KEY-----", p);
    keep("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", p);
    keep("eyJhbGciOiJIUzI1NiJ9 alone is not a token", p);
    keep("https://example.com/path and mailto:", p);
    /* a key name that is itself a value: no value follows it */
    keep("{\"field\":\"password\",\"x\":\"y\"}", p);
    keep("{\"label\":\"password:\",\"x\":\"y\"}", p);
}

/* ------------------------------------------------------------- emails */

static void test_email(void **state)
{
    apr_pool_t *p = *state;
    static const char *const good[] = {
        "alice@example.com", "Bob.Smith+tag@mail.example.co.uk",
        "x_y-z%1@sub-domain.example.org", "13812345678@qq.com",
    };
    static const char *const bad[] = {
        "user@localhost", "a@b.c", "@example.com", "foo@.com",
        "foo@-bar.com", "foo@bar-.com", "a@@b.com", "@",
    };

    expect_each(good, N(good), "mail ", ", thanks", "[EMAIL_1]", p);
    expect_each(good, N(good), "\"", "\"", "[EMAIL_1]", p);
    keep_each(bad, N(bad), "mail ", " now", p);
    /* end of a sentence, a TLD followed by digits */
    expect("Write to alice@example.com.", "Write to [EMAIL_1].", p);
    expect("alice@example.com.123", "[EMAIL_1].123", p);
    /* after an escape: the escape is kept whole */
    expect("\"line\\nalice@example.com\"", "\"line\\n[EMAIL_1]\"", p);
    expect("\"\\u5f20alice@example.com\"", "\"\\u5f20[EMAIL_1]\"", p);
    /* two addresses stuck together */
    expect("a@b.com.x@c.com", "[EMAIL_1].[EMAIL_2]", p);
}

/* ---------------------------------------------------------------- IPs */

static void test_ipv4(void **state)
{
    apr_pool_t *p = *state;
    static const char *const good[] = {
        "192.168.1.1", "10.0.0.1", "255.255.255.255", "0.0.0.0",
        "8.8.8.8",
    };
    static const char *const bad[] = {
        "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4a",
        "v1.2.3.4", "1.2.3.4.5.6.7.8", "1.2.3.999",
    };

    expect_each(good, N(good), "from ", " today", "[IP_1]", p);
    keep_each(bad, N(bad), "version ", " today", p);
    expect("connect 10.0.0.1:8080/x", "connect [IP_1]:8080/x", p);
    expect("at 10.0.0.1.", "at [IP_1].", p);
    expect("{\"ip\":\"10.1.2.3\"}", "{\"ip\":\"[IP_1]\"}", p);
}

static void test_ipv6(void **state)
{
    apr_pool_t *p = *state;
    static const char *const good[] = {
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8::1",
        "fe80::1", "::ffff:192.168.1.1", "2001:db8::", "::ffff:10.0.0.1",
        "1:2:3:4:5:6:7:8", "FE80::0202:B3FF:FE1E:8329",
    };
    static const char *const bad[] = {
        "12:30:45", "12:30", "2024-01-01T12:30:45Z", "std::vector",
        "x[1::2]", "df[100::200]", "a::b", "dead::beef", "00:1a:2b:3c:4d:5e",
        "1:2:3:4:5:6:7:8:9", "1::2::3", "::", "::1", "12345::1",
        "fe80::1g",
    };

    expect_each(good, N(good), "host ", " up", "[IP_1]", p);
    expect_each(good, N(good), "[", "]:443", "[IP_1]", p);
    keep_each(bad, N(bad), "at ", " ok", p);
    /* one address, two spellings, one token */
    expect("2001:db8::1 and 2001:0DB8:0:0:0:0:0:1 and 2001:db8::2",
           "[IP_1] and [IP_1] and [IP_2]", p);
}

/* ------------------------------------------------------------- phones */

static void test_phone(void **state)
{
    apr_pool_t *p = *state;
    static const char *const good[] = {
        "+1 (555) 123-4567", "+1-555-123-4567", "+44 20 7946 0958",
        "+49 30 12345678", "+86 138 1234 5678", "+8613812345678",
        "(555) 123-4567", "(555)123-4567", "555-123-4567", "555.123.4567",
        "1-800-555-1234", "13812345678", "138 1234 5678", "138-1234-5678",
        "0086 13812345678", "008613812345678", "8613912345678",
        "+33 (0)1 23 45 67 89",
    };
    static const char *const bad[] = {
        "123138123456789012", "12345678901", "1381234567", "5551234567",
        "555-123-45678", "155-123-4567", "555-123-4567-8",
        "13812345678.5", "x13812345678", "+123", "+0 555 123 4567",
        "+1 555 123 4567 890 1234", "555 123 4567", "138 1234 56789",
    };

    expect_each(good, N(good), "call ", " now", "[PHONE_1]", p);
    keep_each(bad, N(bad), "n ", " now", p);
    /* Chinese text around, no spaces */
    expect("电话13812345678。", "电话[PHONE_1]。", p);
    /* escaped Chinese before (ensure_ascii JSON) */
    expect("\"\\u7535\\u8bdd13812345678\"", "\"\\u7535\\u8bdd[PHONE_1]\"", p);
    /* the same number written three ways is one person */
    expect("+86 138 1234 5678 / 13812345678 / 138-1234-5678 / 13912345678",
           "[PHONE_1] / [PHONE_1] / [PHONE_1] / [PHONE_2]", p);
    expect("+1 (555) 123-4567 = 555-123-4567",
           "[PHONE_1] = [PHONE_1]", p);
    /* a bare JSON number is quoted */
    expect("{\"tel\": 13812345678, \"n\": [1,13912345678]}",
           "{\"tel\": \"[PHONE_1]\", \"n\": [1,\"[PHONE_2]\"]}", p);
}

/* -------------------------------------------------------------- cards */

static void test_card(void **state)
{
    apr_pool_t *p = *state;
    static const char *const good[] = {
        "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
        "3782 822463 10005", "378282246310005", "5500 0000 0000 0004",
        "4012888888881881", "30569309025904",
    };
    static const char *const bad[] = {
        "4111 1111 1111 1112", "4111111111111112", "1712345678901",
        "41111111111111111111", "4111 1111 1111 111", "4111_1111111111111",
        "4111 1111-1111 1111", "3.4111111111111111", "4111111111111111.5",
        "x4111111111111111", "9111111111111111",
    };

    expect_each(good, N(good), "card ", " exp", "[CARD_1]", p);
    keep_each(bad, N(bad), "card ", " exp", p);
    /* the same card with and without spaces; a list of two */
    expect("4111 1111 1111 1111 or 4111111111111111",
           "[CARD_1] or [CARD_1]", p);
    expect("4111111111111111 4012888888881881", "[CARD_1] [CARD_2]", p);
    /* a card as a JSON number */
    expect("{\"n\": 4111111111111111}", "{\"n\": \"[CARD_1]\"}", p);
    keep("{\"n\": -4111111111111111}", p);
}

/* ------------------------------------------------------ national IDs */

static void test_cn_id(void **state)
{
    apr_pool_t *p = *state;
    static const char *const good[] = {
        "11010519491231002X", "11010519491231002x", "44030419900307123X",
        "310115200002294567", "51010819851111007X",
    };
    static const char *const bad[] = {
        "110105194912310021",   /* wrong check character */
        "310115200002294568",
        "440304199013071234",   /* month 13 */
        "310115190002294567",   /* 29 February 1900 */
        "990105194912310021",   /* no such province */
        "11010519491231002Y", "1101051949123100212", "x11010519491231002X",
    };

    expect_each(good, N(good), "身份证号码：", "。", "[CN_ID_1]", p);
    keep_each(bad, N(bad), "id ", " ok", p);
    expect("{\"id\":\"11010519491231002X\",\"again\":\"11010519491231002x\"}",
           "{\"id\":\"[CN_ID_1]\",\"again\":\"[CN_ID_1]\"}", p);
}

static void test_ssn(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = {
        "000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567",
        "123-45-0000", "123-45-67890", "1123-45-6789", "123-456-789",
    };

    expect("SSN 123-45-6789.", "SSN [SSN_1].", p);
    expect("{\"ssn\":\"078-05-1120\"}", "{\"ssn\":\"[SSN_1]\"}", p);
    keep_each(bad, N(bad), "SSN ", " ok", p);
}

/* -------------------------------------------------------------- tokens */

static void test_consistent_tokens(void **state)
{
    apr_pool_t *p = *state;
    ark_redact_t *r = ark_redact_make(p);
    ark_redact_stats_t st;

    assert_string_equal(
        red(r, "a@x.com b@x.com A@X.COM 10.0.0.1 a@x.com", &st),
        "[EMAIL_1] [EMAIL_2] [EMAIL_1] [IP_1] [EMAIL_1]");
    assert_int_equal(st.count[ARK_REDACT_EMAIL], 4);
    assert_int_equal(st.count[ARK_REDACT_IP], 1);
    assert_int_equal(st.total, 5);
    assert_int_equal(ark_redact_distinct(r), 3);
    /* the answer, same log line: the same values keep their tokens */
    assert_string_equal(red(r, "b@x.com c@x.com 10.0.0.1 10.0.0.2", &st),
                        "[EMAIL_2] [EMAIL_3] [IP_1] [IP_2]");
    assert_int_equal(st.total, 4);
    assert_int_equal(ark_redact_distinct(r), 5);
    /* a new log line starts again */
    assert_string_equal(red(ark_redact_make(p), "c@x.com", NULL),
                        "[EMAIL_1]");
}

static void test_kinds_and_empty(void **state)
{
    apr_pool_t *p = *state;
    ark_redact_t *r = ark_redact_make(p);
    ark_redact_stats_t st;
    apr_size_t len = 99;
    const char *out;
    int k;

    static const char *const labels[] = {"SECRET", "EMAIL", "PHONE", "CARD",
                                         "CN_ID", "SSN", "IP"};
    static const char *const names[] = {"secret", "email", "phone", "card",
                                        "cn_id", "ssn", "ip"};

    for (k = 0; k < ARK_REDACT_KINDS; k++) {
        assert_string_equal(ark_redact_kind_label((ark_redact_kind_t)k),
                            labels[k]);
        assert_string_equal(ark_redact_kind_name((ark_redact_kind_t)k),
                            names[k]);
    }
    assert_null(ark_redact_kind_label(ARK_REDACT_KINDS));
    assert_null(ark_redact_kind_name((ark_redact_kind_t)-1));
    st.total = 42;
    out = ark_redact(r, NULL, 0, &len, &st);
    assert_string_equal(out, "");
    assert_int_equal(len, 0);
    assert_int_equal(st.total, 0);
    out = ark_redact(r, "x", 0, NULL, NULL);
    assert_string_equal(out, "");
    /* embedded NULs are kept, and separate what they sit between */
    out = ark_redact(r, "a\0alice@example.com\0b", 21, &len, &st);
    assert_int_equal(len, 13);
    assert_memory_equal(out, "a\0[EMAIL_1]\0b", 14);
    assert_int_equal(st.count[ARK_REDACT_EMAIL], 1);
}

/* --------------------------------------------------- mixed languages */

static void test_mixed_chinese_english(void **state)
{
    apr_pool_t *p = *state;

    expect("请联系张三，邮箱zhangsan@example.com，"
           "电话：+86 138 1234 5678，"
           "身份证11010519491231002X，卡号4111 1111 1111 1111。"
           "Email me at bob@example.org, IP 10.2.3.4.",
           "请联系张三，邮箱[EMAIL_1]，电话：[PHONE_1]，"
           "身份证[CN_ID_1]，卡号[CARD_1]。"
           "Email me at [EMAIL_2], IP [IP_1].", p);
    /* invalid UTF-8 around values does not hide them */
    expect("\xff\xfe" "alice@example.com\xc3", "\xff\xfe[EMAIL_1]\xc3", p);
}

/* --------------------------------------------------------------- JSON */

static void test_json_stays_json(void **state)
{
    apr_pool_t *p = *state;
    static const char body[] =
        "{\"model\":\"gpt-4o\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Key: sk-proj-Ab3dEf6hIj9kLm2nOp5"
        "qRs8tUv1wXy4zAb7cDe\\n\\tpassword=\\\"hunter2\\\"\"},"
        "{\"role\":\"user\",\"content\":\"\\u6211\\u662f13812345678\\uff0c"
        "mail \\\"alice@example.com\\\" or\\nbob@example.org\\\\\\\\, card "
        "4111-1111-1111-1111, ip \\\"10.0.0.1\\\", "
        "id 11010519491231002X\\r\\n\\u0031\\u0032\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"{\\\"api_key\\\":\\\"abc\\\\\\\"def\\\",\\\"ssn\\\":"
        "\\\"123-45-6789\\\"}\"}]}],"
        "\"user\":\"alice@example.com\",\"n\":13812345678,"
        "\"metadata\":{\"card\":4111111111111111,\"pin_password\":-1234,"
        "\"client_secret\":\"x\\\\\"}}";
    ark_redact_t *r = ark_redact_make(p);
    ark_redact_stats_t st;
    const char *out;
    json_t *j;

    must_parse(body, "the body before", p);
    out = red(r, body, &st);
    j = must_parse(out, out, p);
    assert_string_equal(json_string_value(json_object_get(j, "user")),
                        "[EMAIL_1]");
    assert_string_equal(json_string_value(json_object_get(j, "n")),
                        "[PHONE_1]");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(j, "metadata"), "card")),
                        "[CARD_1]");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(j, "metadata"), "client_secret")),
                        "[SECRET_5]");
    assert_null(strstr(out, "hunter2"));
    assert_null(strstr(out, "13812345678"));
    assert_null(strstr(out, "alice@"));
    assert_null(strstr(out, "bob@"));
    assert_null(strstr(out, "4111"));
    assert_null(strstr(out, "10.0.0.1"));
    assert_null(strstr(out, "11010519491231002X"));
    assert_null(strstr(out, "123-45-6789"));
    assert_null(strstr(out, "sk-proj"));
    assert_null(strstr(out, "abc"));
    assert_null(strstr(out, "def"));
    assert_int_equal(st.count[ARK_REDACT_SSN], 1);
    assert_int_equal(st.count[ARK_REDACT_CN_ID], 1);
    assert_int_equal(st.count[ARK_REDACT_IP], 1);
    /* escapes the scanners must not cut */
    assert_non_null(strstr(out, "\\u6211\\u662f[PHONE_1]\\uff0c"));
    assert_non_null(strstr(out, "\\r\\n\\u0031\\u0032"));
    /* "-1234" outside a string, a negative pin: quoted whole */
    assert_non_null(strstr(out, "\"pin_password\":\"[SECRET_4]\""));
}

/* Pieces random JSON strings are built from: values of every kind, their
 * look-alikes, escapes, quotes, UTF-8. */
static const char *const pieces[] = {
    "alice@example.com", "13812345678", "+86 138 1234 5678",
    "4111 1111 1111 1111", "4111111111111111", "11010519491231002X",
    "123-45-6789", "10.0.0.1", "2001:db8::1", "fe80::1", "::ffff:1.2.3.4",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv", "Bearer abc123def456ghi789",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
    "password=", "password: ", "api_key=", "\\\"api_key\\\": \\\"",
    "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
    "redis://u:p@h", "\\n", "\\\"", "\\\\", "\\u0041", "\\u7535", "\\t",
    "\\/", " ", "-", ".", ":", "::", "@", "+", "(", ")", "'", "1", "12",
    "555", "1234", "0086", "86", "x", "电话", "é", "12:30:45", "1.2.3.4.5",
    "=", ",", "[", "]", "{", "}",
};

static void test_json_random(void **state)
{
    apr_pool_t *p = *state;
    apr_uint32_t seed = 20240917;
    int round;

    for (round = 0; round < 3000; round++) {
        apr_pool_t *rp;
        char *doc;
        int k, pieces_n = (int)(ark_test_rand(&seed) % 24);
        const char *s = "", *out;
        json_t *j;
        json_error_t err;

        apr_pool_create(&rp, p);
        for (k = 0; k < pieces_n; k++) {
            s = apr_pstrcat(rp, s,
                            pieces[ark_test_rand(&seed) % N(pieces)], NULL);
        }
        switch (round % 4) {
        case 0:
            doc = apr_psprintf(rp, "{\"content\":\"%s\"}", s);
            break;
        case 1:
            doc = apr_psprintf(rp, "[\"%s\",13812345678,\"%s\"]", s, s);
            break;
        case 2:
            doc = apr_psprintf(rp, "{\"%s\":{\"api_key\":\"%s\",\"n\":%s}}",
                               s, s, round % 8 == 2 ? "4111111111111111"
                                                    : "-13812345678");
            break;
        default:
            doc = apr_psprintf(rp, "{\"password\":\"%s\\\\\",\"x\":\"%s\"}",
                               s, s);
            break;
        }
        /* every piece is valid inside a JSON string */
        json_decref(ark_test_json_parse(doc, strlen(doc), 0, "the input",
                                        NULL));
        out = red(ark_redact_make(rp), doc, NULL);
        j = json_loads(out, 0, &err);
        if (!j) {
            fail_msg("round %d: redaction broke JSON (%s)\n  in:  %s\n"
                     "  out: %s", round, err.text, doc, out);
        }
        json_decref(j);
        apr_pool_destroy(rp);
    }
}

/* --------------------------------------------------------- everything */

static void test_everything(void **state)
{
    apr_pool_t *p = *state;
    static const char *const values[] = {
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "sk-ant-api03-abcdEFGH1234ijklMNOP5678qrst",
        "sk-ark-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "xoxp-1234567890-0987654321-AbCdEf",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
        "Zm9vYmFyYmF6cXV4MTIz", "hunter2!", "s3cr3t-value", "pa55w0rd",
        "MIIEowIBAAKCAQEA", "alice@example.com", "bob.smith@mail.example.cn",
        "+1 (555) 123-4567", "555-867-5309", "13812345678", "139 8765 4321",
        "+86 137 0000 1111", "4111 1111 1111 1111", "5500000000000004",
        "378282246310005", "11010519491231002X", "078-05-1120",
        "192.168.10.20", "2001:db8:85a3::8a2e:370:7334", "fe80::dead:1",
    };
    static const char body[] =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"Keys: sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z, "
        "sk-ant-api03-abcdEFGH1234ijklMNOP5678qrst and "
        "sk-ark-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa; google "
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q aws AKIAIOSFODNN7EXAMPLE "
        "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789 / "
        "github_pat_11ABCDEFG0123456789_abcdefghij slack "
        "xoxp-1234567890-0987654321-AbCdEf jwt "
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl\\n"
        "Authorization: Bearer Zm9vYmFyYmF6cXV4MTIz\\n"
        "password=hunter2! db_password: s3cr3t-value "
        "{\\\"api_key\\\": \\\"pa55w0rd\\\"}\\n"
        "-----BEGIN EC PRIVATE KEY-----\\nMIIEowIBAAKCAQEA\\n"
        "-----END EC PRIVATE KEY-----\\n"
        "我的邮箱是alice@example.com，bob.smith@mail.example.cn；"
        "phones +1 (555) 123-4567, 555-867-5309, 13812345678, "
        "139 8765 4321, +86 137 0000 1111; cards 4111 1111 1111 1111, "
        "5500000000000004, 378282246310005; 身份证11010519491231002X; "
        "SSN 078-05-1120; from 192.168.10.20 and "
        "[2001:db8:85a3::8a2e:370:7334]:443 via fe80::dead:1.\"}],"
        "\"user\":\"alice@example.com\"}";
    ark_redact_t *r = ark_redact_make(p);
    ark_redact_stats_t st;
    const char *out = red(r, body, &st);
    apr_size_t k;
    int kind;

    must_parse(body, "the body", p);
    must_parse(out, out, p);
    for (k = 0; k < N(values); k++) {
        assert_non_null(strstr(body, values[k]));
        if (strstr(out, values[k])) {
            fail_msg("'%s' survived:\n%s", values[k], out);
        }
    }
    /* nor the digits of any number, however written */
    assert_null(strstr(out, "4567"));
    assert_null(strstr(out, "5309"));
    assert_null(strstr(out, "4321"));
    assert_null(strstr(out, "1111"));
    for (kind = 0; kind < ARK_REDACT_KINDS; kind++) {
        if (st.count[kind] == 0) {
            fail_msg("no %s found:\n%s",
                     ark_redact_kind_name((ark_redact_kind_t)kind), out);
        }
    }
    assert_int_equal(st.count[ARK_REDACT_EMAIL], 3);
    assert_int_equal(st.count[ARK_REDACT_PHONE], 5);
    assert_int_equal(st.count[ARK_REDACT_CARD], 3);
    assert_int_equal(st.count[ARK_REDACT_IP], 3);
    assert_int_equal(st.count[ARK_REDACT_SECRET], 14);
    /* the user field is the address in the message */
    assert_non_null(strstr(out, "\"user\":\"[EMAIL_1]\""));
}

/* ---------------------------------------------------------- robustness */

static void test_random_bytes(void **state)
{
    apr_pool_t *p = *state;
    static const char alphabet[] = "0123456789abcdefABCDEFxX.:@-+ ()\\\"'=/_"
                                   "u\n\t,{}[]\xe4\xb8\xad\xff\x80";
    apr_uint32_t seed = 1;
    int round;

    for (round = 0; round < 4000; round++) {
        apr_pool_t *rp;
        apr_size_t len = ark_test_rand(&seed) % 300, k, out_len;
        char *in;
        const char *out;
        ark_redact_stats_t st;

        apr_pool_create(&rp, p);
        in = apr_palloc(rp, len + 1);
        for (k = 0; k < len; k++) {
            apr_uint32_t v = ark_test_rand(&seed);

            /* half the bytes from the tricky alphabet, half any byte */
            in[k] = (v & 0x100) ? (char)(v & 0xff)
                                : alphabet[(v >> 9) % (sizeof(alphabet) - 1)];
        }
        out = ark_redact(ark_redact_make(rp), len ? in : NULL, len, &out_len,
                         &st);
        assert_non_null(out);
        assert_true(out[out_len] == '\0');
        if (st.total == 0) {
            assert_int_equal(out_len, len);
            if (len) {
                assert_memory_equal(out, in, len);
            }
        }
        apr_pool_destroy(rp);
    }
}

/* --------------------------------------------------------------- speed */

/* A chat body of about size bytes: ordinary text with now and then a
 * value to redact. */
static const char *chat_body(apr_size_t size, apr_pool_t *p)
{
    static const char *const parts[] = {
        "The quick brown fox jumps over the lazy dog. ",
        "Version 1.2.3.4.5 was released at 12:30:45 on 2024-01-01. ",
        "请帮我总结一下这篇文章的主要内容，谢谢。",
        "Contact alice@example.com or call +1 (555) 123-4567. ",
        "\\n\\tfor (i = 0; i < n; i++) { x[i] = y[i] * 2; }\\n",
        "My card is 4111 1111 1111 1111 and server 10.0.0.1. ",
        "order #123456789012345678901234 shipped; total 1234.56 USD. ",
    };
    apr_array_header_t *a = apr_array_make(p, 2048, sizeof(char *));
    apr_size_t len = 0;
    int k = 0;

    *(const char **)apr_array_push(a) =
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"";
    while (len < size) {
        const char *s = parts[k++ % N(parts)];

        *(const char **)apr_array_push(a) = s;
        len += strlen(s);
    }
    *(const char **)apr_array_push(a) = "\"}]}";
    return apr_array_pstrcat(p, a, 0);
}

/* CPU time (clock(), so that a busy machine does not inflate it) per
 * call, in microseconds. */
static double time_us(const char *text, apr_size_t len, int reps,
                      apr_pool_t *p)
{
    clock_t t0 = clock();
    int k;

    for (k = 0; k < reps; k++) {
        apr_pool_t *rp;

        apr_pool_create(&rp, p);
        ark_redact(ark_redact_make(rp), text, len, NULL, NULL);
        apr_pool_destroy(rp);
    }
    return (double)(clock() - t0) * 1e6 / CLOCKS_PER_SEC / reps;
}

/* Repeats unit to len bytes. */
static const char *repeat(const char *unit, apr_size_t len, apr_pool_t *p)
{
    apr_size_t u = strlen(unit), k;
    char *s = apr_palloc(p, len + 1);

    for (k = 0; k < len; k++) {
        s[k] = unit[k % u];
    }
    s[len] = '\0';
    return s;
}

static void test_speed(void **state)
{
    apr_pool_t *p = *state;
    const char *body = chat_body(64 * 1024, p);
    static const char *const adversarial[] = {
        "a", "a@", "1", "1.", "1:", ":", "::1:", "-----BEGIN ",
        "-----BEGIN RSA PRIVATE KEY-----", "password=\"", "password='",
        "+1 ", "4111 ", "1-", "(555) ", "\\", "\\\"", "eyJaaaaaaaaaaaa.",
        "x://", "Bearer ", "a.", "0086 ",
    };
    apr_size_t k, len = 64 * 1024;
    ark_redact_stats_t st;

    red(ark_redact_make(p), body, &st);
    assert_true(st.total > 0);
    must_parse(red(ark_redact_make(p), body, NULL), "the chat body", p);
    printf("[ redact   ] %lu-byte chat body: %.1f us CPU per call "
           "(%lu values replaced)\n", (unsigned long)strlen(body),
           time_us(body, strlen(body), 200, p), (unsigned long)st.total);
    for (k = 0; k < N(adversarial); k++) {
        const char *s = repeat(adversarial[k], len, p);

        printf("[ redact   ] 64 KiB of \"%s\"...: %.1f us\n", adversarial[k],
               time_us(s, len, 5, p));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ARK_TEST(test_secrets),
        ARK_TEST(test_secrets_negative),
        ARK_TEST(test_email),
        ARK_TEST(test_ipv4),
        ARK_TEST(test_ipv6),
        ARK_TEST(test_phone),
        ARK_TEST(test_card),
        ARK_TEST(test_cn_id),
        ARK_TEST(test_ssn),
        ARK_TEST(test_consistent_tokens),
        ARK_TEST(test_kinds_and_empty),
        ARK_TEST(test_mixed_chinese_english),
        ARK_TEST(test_json_stays_json),
        ARK_TEST(test_json_random),
        ARK_TEST(test_everything),
        ARK_TEST(test_random_bytes),
        ARK_TEST(test_speed),
    };

    return ARK_TEST_RUN("redact", tests);
}
