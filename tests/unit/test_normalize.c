/* Unit tests for the text normaliser (cachesvc/cs_normalize.c).
 *
 * A table of inputs and expected outputs covers each rule of
 * cs_normalize.h in English and Chinese, then the things that must NOT
 * change (operators, identifiers, code spans and fenced blocks byte for
 * byte, CJK punctuation, superscripts). Every case is also checked for
 * idempotence. Two fuzz loops from fixed seeds feed random bytes and
 * random markdown-heavy strings: no crash (run under ASan/UBSan too),
 * output never longer than a sane bound, and normalize(normalize(x)) ==
 * normalize(x).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cs_normalize.h"

/* Iterations of each fuzz loop; enough to find every idempotence bug the
 * pass had while it was written, small enough for a sanitizer build. */
#define FUZZ_ROUNDS 20000

/* Longest random input of the fuzz loops. */
#define FUZZ_MAX_LEN 96

typedef struct {
    const char *in;
    const char *want;
} case_t;

/* Normalises len bytes of s with flags; returns a malloc'd copy of the
 * result (NUL-terminated, *olen bytes: random input may hold NULs). */
static char *norm_len(const char *s, size_t len, unsigned flags,
                      size_t *olen)
{
    cs_buf_t b;
    char *r;

    cs_buf_init(&b);
    assert_int_equal(cs_normalize_opts(s, len, flags, &b), CS_OK);
    r = malloc(b.len + 1);
    assert_non_null(r);
    memcpy(r, b.len ? b.data : "", b.len);
    r[b.len] = '\0';
    *olen = b.len;
    cs_buf_free(&b);
    return r;
}

static char *norm_flags(const char *s, size_t len, unsigned flags)
{
    size_t olen;

    return norm_len(s, len, flags, &olen);
}

static char *norm(const char *s)
{
    return norm_flags(s, strlen(s), 0);
}

static void dump(const char *what, const char *s, size_t len)
{
    size_t k;

    fprintf(stderr, "%s:", what);
    for (k = 0; k < len; k++) {
        fprintf(stderr, " %02x", (unsigned char)s[k]);
    }
    fprintf(stderr, "\n");
}

/* Checks normalize(normalize(s)) == normalize(s) for len bytes of s. */
static void check_idempotent(const char *s, size_t len, unsigned flags)
{
    size_t l1, l2;
    char *once = norm_len(s, len, flags, &l1);
    char *twice = norm_len(once, l1, flags, &l2);

    if (l1 != l2 || memcmp(once, twice, l1) != 0) {
        fprintf(stderr, "not idempotent (flags %u)\n", flags);
        dump("input", s, len);
        dump(" once", once, l1);
        dump("twice", twice, l2);
        fail();
    }
    free(once);
    free(twice);
}

static void run_cases(const case_t *cases, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char *got = norm(cases[i].in);
        if (strcmp(got, cases[i].want) != 0) {
            fprintf(stderr, "case %zu: [%s]\n  want [%s]\n   got [%s]\n", i,
                    cases[i].in, cases[i].want, got);
        }
        assert_string_equal(got, cases[i].want);
        free(got);
        check_idempotent(cases[i].in, strlen(cases[i].in), 0);
    }
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

static void test_case_and_space(void **state)
{
    static const case_t cases[] = {
        {"", ""},
        {"   \t\n  ", ""},
        {"Hello World", "hello world"},
        {"  What   is\tthe\n\ncapital of FRANCE?  ", "what is the capital of "
                                                   "france?"},
        /* no-break space, em space, line separator, ideographic space */
        {"a\xc2\xa0" "b\xe2\x80\x83" "c\xe2\x80\xa8" "d\xe3\x80\x80" "e",
         "a b c d e"},
        /* a BOM is white space */
        {"\xef\xbb\xbfhello", "hello"},
        /* Latin-1 and Latin Extended-A */
        {"ÀÉÎÕÜ Ç Ø Þ Ÿ Ł Ő Ž Ĳ", "àéîõü ç ø þ ÿ ł ő ž ĳ"},
        {"Straße STRASSE ẞ", "strasse strasse ss"},
        {"İstanbul ıi", "istanbul ıi"},
        /* Greek, final sigma folds to sigma */
        {"ΣΊΣΥΦΟΣ Ελλάδα", "σίσυφοσ ελλάδα"},
        /* Cyrillic */
        {"МОСКВА Ёж Їжак", "москва ёж їжак"},
        /* Vietnamese (Latin Extended Additional) */
        {"TIẾNG VIỆT", "tiếng việt"},
        /* Kelvin, Angstrom, micro, long s */
        {"\xe2\x84\xaa \xe2\x84\xab 5\xc2\xb5m \xc5\xbf", "k å 5μm s"},
        /* pure trailing punctuation is kept */
        {"what is x?", "what is x?"},
        {"what is x", "what is x"},
    };

    (void)state;
    RUN(cases);
}

static void test_compatibility(void **state)
{
    static const case_t cases[] = {
        /* decomposed Latin letters are composed */
        {"cafe\xcc\x81", "café"},
        {"CAFE\xcc\x81", "café"},
        {"n\xcc\x83 u\xcc\x88 a\xcc\x8a c\xcc\xa7", "ñ ü å ç"},
        {"e\xcc\x81" "e\xcc\x81", "éé"},
        /* Cyrillic short i from its parts */
        {"\xd0\x98\xcc\x86", "й"},
        /* a mark after a full-width letter composes with its ASCII form */
        {"\xef\xbc\xa5\xcc\x81", "é"},
        /* a second mark stays */
        {"e\xcc\x81\xcc\x81", "é\xcc\x81"},
        /* ligatures */
        {"\xef\xac\x81nd the \xef\xac\x82ow \xef\xac\x83x",
         "find the flow ffix"},
        /* kept on purpose: superscripts, circled digits, fractions */
        {"x² x₂ ① ½", "x² x₂ ① ½"},
    };

    (void)state;
    RUN(cases);
}

static void test_chinese(void **state)
{
    static const case_t cases[] = {
        /* full-width letters, digits and punctuation to ASCII */
        {"ＡＢＣ１２３", "abc123"},
        {"ｐｙｔｈｏｎ３．１２", "python3.12"},
        /* U+FF0C full-width comma is in the block: it is "," */
        {"你好，世界！", "你好,世界!"},
        {"为什么？（注）", "为什么?(注)"},
        {"Ｃ＋＋和Ｃ＃", "c++和c#"},
        /* CJK punctuation outside the block stays */
        {"你好。世界、再见「引用」《书名》【注】",
         "你好。世界、再见「引用」《书名》【注】"},
        /* ideographic space */
        {"你好　　世界", "你好 世界"},
        {"  法国的首都是哪里？  ", "法国的首都是哪里?"},
        /* full-width yen */
        {"￥100", "¥100"},
        /* the full-width backtick is not a backtick */
        {"｀ＡＢ｀", "｀ab｀"},
        /* markdown around Chinese */
        {"# 标题\n- 第一项\n- 第二项", "标题 第一项 第二项"},
        {"这**非常**重要", "这非常重要"},
        {"**注意**：不要删除", "注意:不要删除"},
        {"> 引用的话", "引用的话"},
        {"１. 第一步", "第一步"},
    };

    (void)state;
    RUN(cases);
}

static void test_markdown(void **state)
{
    static const case_t cases[] = {
        {"# Title", "title"},
        {"###### Six", "six"},
        {"####### seven", "####### seven"},
        {"#include <stdio.h>", "#include <stdio.h>"},
        {"#hashtag", "#hashtag"},
        {"intro\n## Heading\ntext", "intro heading text"},
        {"> quoted\n> > nested", "quoted nested"},
        {">= 5", ">= 5"},
        {"- one\n- two\n* three\n+ four\n• five", "one two three four five"},
        {"1. first\n2) second\n10. tenth\n123. x", "first second tenth x"},
        {"2024. was a year", "2024. was a year"},
        {"3.14 is pi", "3.14 is pi"},
        {"-5 degrees", "-5 degrees"},
        {"- - nested", "nested"},
        {"  - indented", "indented"},
        {"> - # deep", "deep"},
        {"**bold** and __strong words__", "bold and strong words"},
        {"*em* and _em words_ and ***both***", "em and em words and both"},
        {"a **bold** word.", "a bold word."},
        {"(**note**)", "(note)"},
        {"**Note:** read", "note: read"},
        {"**multi word bold**", "multi word bold"},
        /* unmatched or not wrapping words: left alone */
        {"**not closed", "**not closed"},
        {"** spaced **", "** spaced **"},
        {"*a *b", "*a *b"},
        {"**bold**text", "**bold**text"},
        {"word*star*", "word*star*"},
        /* emphasis may cross lines (they are joined anyway), not blocks */
        {"*a\nb*", "a b"},
        {"*a\n```\nb\n```\nc*", "*a\n```\nb\n```\nc*"},
        /* emphasis around code */
        {"**`code`**", "**`code`**"},
        {"*see `x` here*", "see `x` here"},
    };

    (void)state;
    RUN(cases);
}

/* Operators and identifiers outside backticks must survive. */
static void test_operators_and_identifiers(void **state)
{
    static const case_t cases[] = {
        {"n * 2", "n * 2"},
        {"n ** 2", "n ** 2"},
        {"2*3", "2*3"},
        {"2*3*4", "2*3*4"},
        {"a_b", "a_b"},
        {"my_var_name", "my_var_name"},
        {"__init__", "__init__"},
        {"what does __init__ do", "what does __init__ do"},
        {"__init__ and __main__", "__init__ and __main__"},
        {"_id_", "_id_"},
        {"f(*args, **kwargs)", "f(*args, **kwargs)"},
        {"*args, **kwargs", "*args, **kwargs"},
        {"x = *p * 2;", "x = *p * 2;"},
        {"a * b * c", "a * b * c"},
        {"5 * 3 = 15", "5 * 3 = 15"},
        {"2**10", "2**10"},
        {"snake_case_and_CamelCase", "snake_case_and_camelcase"},
    };
    char *a, *b;

    (void)state;
    RUN(cases);
    a = norm("n * 2");
    b = norm("n ** 2");
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void test_code(void **state)
{
    static const case_t cases[] = {
        /* inline spans: byte for byte, backticks kept */
        {"Use `Foo  Bar` NOW", "use `Foo  Bar` now"},
        {"`**x**` and `a_b`", "`**x**` and `a_b`"},
        {"``a ` b``", "``a ` b``"},
        {"`unclosed Code", "`unclosed code"},
        {"`` x ` Y", "`` x ` y"},
        /* fenced blocks: byte for byte, fences kept, one newline around */
        {"Fix:\n\n```Python\ndef F(x):\n    return  X * 2\n```\n\nThanks!",
         "fix:\n```Python\ndef F(x):\n    return  X * 2\n```\nthanks!"},
        {"```\nA\n```", "```\nA\n```"},
        {"  ```c\nint X;\n  ```  \nDone", "```c\nint X;\n  ```\ndone"},
        /* an unclosed fence runs to the end */
        {"Look:\n```\nUPPER   \n", "look:\n```\nUPPER   \n"},
        /* a longer closing fence is fine, a shorter one is not */
        {"````\n```\nX\n````\nY", "````\n```\nX\n````\ny"},
        /* backticks in the info string: not a fence but a span */
        {"```a``` B", "```a``` b"},
        /* markers inside a fence are content */
        {"```\n# not a heading\n- item\n```", "```\n# not a heading\n- item\n"
                                              "```"},
        {"```\n1\n```\n```\n2\n```", "```\n1\n```\n```\n2\n```"},
        /* CRLF */
        {"A\r\n```\r\nX\r\n```\r\nB", "a\n```\r\nX\r\n```\nb"},
    };

    (void)state;
    RUN(cases);
}

static void test_invalid_utf8(void **state)
{
    static const case_t cases[] = {
        {"a\xff" "b", "a\xff" "b"},
        {"\xc3", "\xc3"},
        {"A\xc3 B", "a\xc3 b"},
        /* overlong, surrogate, above U+10FFFF: bytes kept */
        {"\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80",
         "\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80"},
        /* truncated sequence before a letter */
        {"\xe4\xb8" "A", "\xe4\xb8" "a"},
        /* an invalid byte blocks emphasis next to it */
        {"**a\xc3**\xa9", "**a\xc3**\xa9"},
    };

    (void)state;
    RUN(cases);
}

static void test_flags(void **state)
{
    char *s;

    (void)state;
    s = norm_flags("Hello **World** ＡＢ", 22, CS_NORM_KEEP_CASE);
    assert_string_equal(s, "Hello World AB");
    free(s);
    s = norm_flags("Straße", 7, CS_NORM_KEEP_CASE);
    assert_string_equal(s, "Straße");
    free(s);
    s = norm_flags("**A** `B`", 9, CS_NORM_PLAIN);
    assert_string_equal(s, "**a** `b`");
    free(s);
}

/* The worked example at the top of cs_normalize.c. */
static void test_worked_example(void **state)
{
    char *s = norm("## **What** is `x * 2`?\n\n- In  ＰＹＴＨＯＮ");

    (void)state;
    assert_string_equal(s, "what is `x * 2`? in python");
    free(s);
}

typedef struct {
    char out[512];
    size_t len;
} pieces_t;

static void on_piece(void *ctx, int kind, size_t off, size_t len)
{
    pieces_t *p = ctx;

    p->len += (size_t)snprintf(p->out + p->len, sizeof(p->out) - p->len,
                               "%c%zu+%zu ", kind == CS_NORM_PROSE ? 'P'
                               : kind == CS_NORM_SPAN ? 'S' : 'B', off, len);
}

static void test_pieces(void **state)
{
    static const struct {
        const char *in;
        const char *want;
    } t[] = {
        {"", ""},
        {"plain", "P0+5 "},
        {"a `b` c", "P0+2 S2+3 P5+2 "},
        {"`b`", "S0+3 "},
        {"x\n```\ncode\n```\ny", "P0+2 B2+12 P14+2 "},
        {"unclosed ` tick", "P0+15 "},
        {"```\nopen", "B0+8 "},
        /* a fence must start its line */
        {"x ```a``` y", "P0+2 S2+7 P9+2 "},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        pieces_t p;
        p.len = 0;
        p.out[0] = '\0';
        cs_normalize_pieces(t[i].in, strlen(t[i].in), on_piece, &p);
        assert_string_equal(p.out, t[i].want);
    }
}

static void test_limits(void **state)
{
    cs_buf_t b;
    char *big;

    (void)state;
    cs_buf_init(&b);
    big = malloc(CS_NORM_MAX_INPUT + 1);
    assert_non_null(big);
    memset(big, 'a', CS_NORM_MAX_INPUT + 1);
    assert_int_equal(cs_normalize(big, CS_NORM_MAX_INPUT + 1, &b), CS_ERR);
    assert_int_equal(b.len, 0);
    free(big);
    /* out's old content is replaced */
    cs_buf_append(&b, "old", 3);
    assert_int_equal(cs_normalize("New", 3, &b), CS_OK);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "new", 3);
    /* text need not be NUL-terminated */
    assert_int_equal(cs_normalize("ABCDEF", 3, &b), CS_OK);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "abc", 3);
    cs_buf_free(&b);
}

/* Lots of backticks and stars: must stay linear-ish and correct. */
static void test_pathological(void **state)
{
    size_t n = 200000, i;
    char *s = malloc(n);
    cs_buf_t b;

    (void)state;
    assert_non_null(s);
    cs_buf_init(&b);
    for (i = 0; i < n; i++) {
        s[i] = "`*a _"[i % 5];
    }
    assert_int_equal(cs_normalize(s, n, &b), CS_OK);
    for (i = 0; i < n; i++) {
        s[i] = (i % 7 == 0) ? '`' : (i % 3 ? '`' : 'x');
    }
    assert_int_equal(cs_normalize(s, n, &b), CS_OK);
    cs_buf_free(&b);
    free(s);
}

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void test_fuzz_bytes(void **state)
{
    unsigned char buf[FUZZ_MAX_LEN];
    int round;

    (void)state;
    rng_state = 0x9E3779B97F4A7C15ull;
    for (round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = rnd() % FUZZ_MAX_LEN, k;
        for (k = 0; k < len; k++) {
            buf[k] = (unsigned char)rnd();
        }
        check_idempotent((const char *)buf, len, 0);
        check_idempotent((const char *)buf, len, CS_NORM_KEEP_CASE);
    }
}

/* Random strings over pieces that interact: markdown marks, code marks,
 * blanks, letters that fold, composing marks, invalid bytes. */
static void test_fuzz_markdown(void **state)
{
    static const char *const pieces[] = {
        "*", "**", "_", "__", "`", "```", "#", "# ", "> ", "- ", "1. ",
        " ", "  ", "\n", "\r\n", "\t", "a", "B", "x y", "中", "文",
        "\xef\xbc\xa1", "\xef\xbc\x8a", "\xef\xbd\x80", "\xcc\x81", "e",
        "\xc3", "\xa9", "\xff", "\xe3\x80\x80", "(", ")", ".", "2",
        "\xc3\x9f", "\xef\xac\x81", "\xe2\x80\xa2 ", "+ ", ">"
    };
    char buf[FUZZ_MAX_LEN * 4];
    int round;

    (void)state;
    rng_state = 0xD1B54A32D192ED03ull;
    for (round = 0; round < FUZZ_ROUNDS; round++) {
        size_t len = 0, parts = rnd() % 24, k;
        for (k = 0; k < parts; k++) {
            const char *pc = pieces[rnd() % (sizeof(pieces)
                                             / sizeof(pieces[0]))];
            size_t pl = strlen(pc);
            memcpy(buf + len, pc, pl);
            len += pl;
        }
        check_idempotent(buf, len, 0);
        check_idempotent(buf, len, CS_NORM_KEEP_CASE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_and_space),
        cmocka_unit_test(test_compatibility),
        cmocka_unit_test(test_chinese),
        cmocka_unit_test(test_markdown),
        cmocka_unit_test(test_operators_and_identifiers),
        cmocka_unit_test(test_code),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pathological),
        cmocka_unit_test(test_fuzz_bytes),
        cmocka_unit_test(test_fuzz_markdown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
