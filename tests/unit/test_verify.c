/* Unit tests for the semantic-hit verifier (cachesvc/cs_verify.c).
 *
 * Two tables of text pairs, English and Chinese: near-duplicates that
 * must pass (case, punctuation, white space, markdown, full-width forms,
 * politeness and filler words, word order of filler), and hard negatives
 * that must fail with a given reason (a swapped name, a changed number,
 * a negation, a reversed direction, another programming language, another
 * output format, another natural language, other code). Every pair is
 * checked both ways round: the verdict must not depend on which text is
 * the query. A fuzz loop feeds random bytes and random mixes of the pair
 * texts (no crash under ASan/UBSan; symmetric verdicts).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>

#include "cs_normalize.h"
#include "cs_verify.h"

/* Iterations of the fuzz loop. */
#define FUZZ_ROUNDS 20000

/* Threads of the concurrency test (the first calls race to index the
 * word lists). */
#define TEST_THREADS 4

typedef struct {
    const char *a;
    const char *b;
    const char *reason;   /* expected: "ok" or why they differ */
} pair_t;

static void check_pairs(const pair_t *p, size_t n)
{
    size_t i;
    int bad = 0;

    for (i = 0; i < n; i++) {
        cs_verify_result_t ab, ba;

        assert_int_equal(cs_verify(p[i].a, strlen(p[i].a), p[i].b,
                                   strlen(p[i].b), &ab), CS_OK);
        assert_int_equal(cs_verify(p[i].b, strlen(p[i].b), p[i].a,
                                   strlen(p[i].a), &ba), CS_OK);
        if (strcmp(ab.reason, p[i].reason) != 0 || ab.ok != ba.ok
            || ab.ok != (strcmp(p[i].reason, "ok") == 0)) {
            fprintf(stderr, "pair %zu: [%s] vs [%s]\n  want %s, got %s "
                    "(reversed: %s)\n", i, p[i].a, p[i].b, p[i].reason,
                    ab.reason, ba.reason);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

#define CHECK(pairs) check_pairs(pairs, sizeof(pairs) / sizeof(pairs[0]))

static void test_english_pass(void **state)
{
    static const pair_t p[] = {
        {"What is the capital of France?", "what is the capital of france",
         "ok"},
        {"What is the capital of France?",
         "Can you please tell me what the capital of France is?", "ok"},
        {"What's the capital of France", "What is the capital of France?",
         "ok"},
        {"**What** is   the capital of *France*?",
         "What is the capital of France?", "ok"},
        {"Explain how a hash table works.",
         "Can you explain how a hash table works, please?", "ok"},
        {"Write a Python function to reverse a linked list",
         "write a python function to reverse a linked list, please", "ok"},
        {"How do I sort a dict by value in Python?",
         "how to sort a dict by value in python", "ok"},
        {"Convert 100 degrees Celsius to Fahrenheit",
         "Please convert 100 degrees celsius to fahrenheit.", "ok"},
        {"Summarize this text in 3 bullet points",
         "Please summarise this text in three bullet points", "ok"},
        {"What is 15% of 200?", "what's 15 percent of 200", "ok"},
        {"How many people live in New York City?",
         "how many people live in new york city", "ok"},
        {"Tell me about the Eiffel Tower", "tell me about the eiffel tower",
         "ok"},
        {"I don't want onions on my pizza",
         "I do not want onions on my pizza", "ok"},
        {"What does the `map()` function do in JavaScript?",
         "what does the `map()` function do in javascript", "ok"},
        {"Give me the result as JSON", "give me the result in json format",
         "ok"},
        {"Write a haiku about the ocean", "Write me a haiku about the ocean",
         "ok"},
        {"1,000 km to miles", "1000 km to miles", "ok"},
        {"How do I use async/await in Rust?",
         "how do i use async / await in rust", "ok"},
        {"What is twenty-five times four?", "What is 25 times 4?", "ok"},
        {"Count to a hundred and ten", "count to 110", "ok"},
        {"Which one is better, Vim or Emacs?",
         "which is better: vim or emacs", "ok"},
        {"HOW DO I CENTER A DIV", "how do i center a div", "ok"},
        {"Fix this:\n```python\nprint(x)\n```",
         "Please fix this:\n\n```python\nprint(x)\n```\n", "ok"},
        {"What is the time complexity of quicksort?",
         "Quicksort time complexity?", "ok"},
        {"ＷＨＡＴ ＩＳ ２＋２？", "what is 2+2?", "ok"},
        {"Is it safe to eat raw cookie dough? Thanks!",
         "Hi! Is it safe to eat raw cookie dough?", "ok"},
        {"I don’t know why it doesn’t work",
         "I do not know why it does not work", "ok"},
        {"Go to Paris and see the Louvre",
         "Get to Paris and see the Louvre", "ok"},
        {"Run 5km every day", "run 5 km every day", "ok"},
        {"What did Mr. Smith say?", "what did mr smith say", "ok"},
        {"Fix:\n```\nint  x  =  1;\n```", "Fix:\n```\nint x = 1;\n```",
         "ok"},
        {"France's capital", "the capital of france", "ok"},
        {"WHAT IS THE DIFFERENCE BETWEEEN A LIST AND A TUPLE IN PYTHON?",
         "What is the difference between a list and a tuple in Python?",
         "ok"},
        {"Write a 500-word essay about climate change.",
         "Write a 500 word essay about climate change.", "ok"},
        {"Give me 3 ideas for a birthday party.",
         "Give me three ideas for a birthday party. Thx", "ok"},
        {"How do I convert a string to a date in Java?",
         "> How do I convert a string into a date in Java?", "ok"},
        {"Write a JavaScript function to debounce another function.",
         "Write a JavaScript function to drbounce another function.", "ok"},
        {"Is it better to rent or buy a house?",
         "Question: Is it bettre to rent or buy a house?", "ok"},
        {"What is the capital of Australia?\n\n---",
         "What is the capital of Australia?", "ok"},
        {"", "", "ok"},
    };

    (void)state;
    CHECK(p);
}

static void test_english_fail(void **state)
{
    static const pair_t p[] = {
        /* names */
        {"What is the capital of France?", "What is the capital of Spain?",
         "entities differ"},
        {"what is the capital of france", "what is the capital of spain",
         "entities differ"},
        {"Who is the CEO of Apple?", "Who is the CEO of Google?",
         "entities differ"},
        {"What is the population of Tokyo?",
         "What is the population of Osaka?", "entities differ"},
        {"Tell me about Zorblax", "Tell me about Quuxly", "entities differ"},
        {"How far is it from the Earth to Mars?",
         "How far is it from the Earth to Jupiter?", "entities differ"},
        {"Best restaurants in New York", "Best restaurants in Los Angeles",
         "entities differ"},
        /* numbers */
        {"What is 2+2?", "What is 2+3?", "numbers differ"},
        {"Give me 5 ideas for a party", "Give me 10 ideas for a party",
         "numbers differ"},
        {"Give me two ideas", "Give me three ideas", "numbers differ"},
        {"What happened in 1989?", "What happened in 1998?",
         "numbers differ"},
        {"Is 3.14 bigger than 3.15?", "Is 3.14 bigger than 3.16?",
         "numbers differ"},
        {"What is 15% of 200", "What is 15 of 200", "numbers differ"},
        {"What is -5 squared?", "What is 5 squared?", "numbers differ"},
        {"Explain GPT-4", "Explain GPT-3.5", "numbers differ"},
        /* negation */
        {"Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?",
         "negation differs"},
        {"Write a sentence with the letter e",
         "Write a sentence without the letter e", "negation differs"},
        {"I can swim", "I can't swim", "negation differs"},
        {"Show all users except admins", "Show all users and admins",
         "negation differs"},
        {"Why does it never rain here?", "Why does it rain here?",
         "negation differs"},
        /* direction */
        {"Convert 100 degrees Celsius to Fahrenheit",
         "Convert 100 degrees Fahrenheit to Celsius", "direction differs"},
        {"Translate this from English to French",
         "Translate this from French to English", "direction differs"},
        {"Convert JSON to YAML", "Convert YAML to JSON",
         "direction differs"},
        {"binary to decimal", "decimal to binary", "direction differs"},
        {"Flights from Paris to London", "Flights from London to Paris",
         "direction differs"},
        {"json -> csv converter", "csv -> json converter",
         "direction differs"},
        {"Count from 1 to 10", "Count from 10 to 1", "direction differs"},
        /* programming language */
        {"Write a Python function to reverse a linked list",
         "Write a Java function to reverse a linked list",
         "language differs"},
        {"How do I read a file in Go?", "How do I read a file in Rust?",
         "language differs"},
        {"How do I read a file in C?", "How do I read a file in C++?",
         "language differs"},
        {"Hello world in C#", "Hello world in C++", "language differs"},
        /* natural language */
        {"Answer in English: what is love?",
         "Answer in French: what is love?", "language differs"},
        {"What is the capital of France?", "法国的首都是哪里？",
         "language differs"},
        {"What is the capital of France?", "Какая столица Франции?",
         "language differs"},
        /* format */
        {"Give me the answer in JSON", "Give me the answer in YAML",
         "format differs"},
        {"List the planets as a table", "List the planets as csv",
         "format differs"},
        {"Return it as markdown", "Return it as HTML", "format differs"},
        /* code */
        {"What does `len()` do?", "What does `sum()` do?",
         "code identifiers differ"},
        {"What does getUserName return?", "What does getUserId return?",
         "code identifiers differ"},
        {"What does os.path.join do?", "What does os.path.split do?",
         "code identifiers differ"},
        {"What is the difference between let and const?",
         "What is the difference between let and var?",
         "code identifiers differ"},
        {"How do I reverse a string?", "How do I reverse an array?",
         "code identifiers differ"},
        {"Fix this:\n```\nx = 1\n```", "Fix this:\n```\nx = 2\n```",
         "code identifiers differ"},
        {"What does my_var do", "What does my_val do",
         "code identifiers differ"},
        {"Explain `Date`", "Explain `date`", "code identifiers differ"},
        {"What did Mr. Smith say?", "What did Mr. Jones say?",
         "entities differ"},
        {"Schedule it for June 5", "Schedule it for July 5",
         "entities differ"},
        {"Schedule it for May 5", "Schedule it for May 6",
         "numbers differ"},
        {"I don’t like it", "I like it", "negation differs"},
        /* order and direction */
        {"Is 2 to the power of 10 bigger than 10 to the power of 2?",
         "Is 10 to the power of 2 bigger than 2 to the power of 10?",
         "direction differs"},
        {"Write code to transfer $100 from account A to account B.",
         "Write code to transfer $100 from account B to account A.",
         "direction differs"},
        {"Move all files from the backup folder into the src folder.",
         "Move all files from the src folder into the backup folder.",
         "direction differs"},
        {"Is France bigger than Germany?", "Is Germany bigger than France?",
         "direction differs"},
        /* operators */
        {"What is n * 2?", "What is n ** 2?", "code identifiers differ"},
        {"Why is i <= n wrong here?", "Why is i < n wrong here?",
         "code identifiers differ"},
        {"What is 5-3?", "What is 5+3?", "code identifiers differ"},
        /* format words */
        {"Summarise it in one sentence", "Summarise it in one paragraph",
         "format differs"},
    };

    (void)state;
    CHECK(p);
}

static void test_chinese_pass(void **state)
{
    static const pair_t p[] = {
        {"法国的首都是哪里？", "请问法国的首都是哪里", "ok"},
        {"帮我用Python写一个快速排序", "用Python写一个快速排序", "ok"},
        {"请把这段话翻译成英文", "把这段话翻译成英文", "ok"},
        {"北京今天的天气怎么样？", "请问北京今天天气怎么样", "ok"},
        {"解释一下什么是机器学习", "请解释什么是机器学习？", "ok"},
        {"１＋１等于几？", "1+1等于几?", "ok"},
        {"三十五加七等于多少", "35加7等于多少", "ok"},
        {"两千零二十四年", "2024年", "ok"},
        {"用中文回答：什么是量子计算", "请用中文回答什么是量子计算", "ok"},
        {"这个方法非常好吗", "这个方法非常好吗？", "ok"},
        {"能帮我把摄氏度转换成华氏度吗", "帮我把摄氏度转换成华氏度", "ok"},
        {"杭州市有哪些景点", "请问杭州市有哪些景点？", "ok"},
        {"百分之五十的人同意", "50%的人同意", "ok"},
        {"**重要**：请总结这篇文章", "重要:请总结这篇文章", "ok"},
        {"特别是在未来", "特别是在未来。", "ok"},
        {"写一个函数", "帮我写个函数", "ok"},
        {"中国有多少人口", "中国的人口有多少", "ok"},
        {"3万元能买什么", "三万元能买什么", "ok"},
        /* 能不能 asks, it does not negate */
        {"能不能帮我写一份求职信？", "写一份求职信。", "ok"},
        {"有没有简单的办法", "有简单的办法吗", "ok"},
        {"100米等于多少英尺？", "一百米等于多少英尺？", "ok"},
    };

    (void)state;
    CHECK(p);
}

static void test_chinese_fail(void **state)
{
    static const pair_t p[] = {
        {"法国的首都是哪里", "德国的首都是哪里", "entities differ"},
        {"北京的人口是多少", "上海的人口是多少", "entities differ"},
        {"广东省的省会是哪里", "浙江省的省会是哪里", "entities differ"},
        {"苏州市有什么好吃的", "常州市有什么好吃的", "entities differ"},
        {"我不喜欢这部电影", "我喜欢这部电影", "negation differs"},
        {"他没有去过日本", "他去过日本", "negation differs"},
        {"请勿吸烟", "请吸烟", "negation differs"},
        {"把这段话中译英", "把这段话英译中", "direction differs"},
        {"把摄氏度转换成华氏度", "把华氏度转换成摄氏度",
         "direction differs"},
        {"把英文翻译成中文", "把中文翻译成英文", "direction differs"},
        {"我有三个苹果", "我有五个苹果", "numbers differ"},
        {"一百元能买什么", "一千元能买什么", "numbers differ"},
        {"百分之五十的人同意", "百分之六十的人同意", "numbers differ"},
        {"第一章讲了什么", "第二章讲了什么", "numbers differ"},
        {"用Python实现二分查找", "用Java实现二分查找", "language differs"},
        {"翻译成英文", "翻译成日文", "language differs"},
        {"用表格展示结果", "用JSON展示结果", "format differs"},
        {"解释`fmt.Println`", "解释`fmt.Printf`", "code identifiers differ"},
        {"10除以4等于多少？", "4除以10等于多少？", "direction differs"},
        {"怎么从PostgreSQL迁移到MySQL？", "怎么从MySQL迁移到PostgreSQL？",
         "direction differs"},
        {"PDF怎么转Word文档？", "Word文档怎么转PDF？", "direction differs"},
        {"农历怎么换算成公历？", "公历怎么换算成农历？", "direction differs"},
        {"100华氏度等于多少摄氏度？", "100摄氏度等于多少华氏度？",
         "direction differs"},
        {"把feature分支rebase到main上", "把main分支rebase到feature上",
         "direction differs"},
        {"北京比上海大吗", "上海比北京大吗", "direction differs"},
        {"用一段话总结人工智能的发展历史。", "用一句话总结人工智能的发展历史。",
         "format differs"},
    };

    (void)state;
    CHECK(p);
}

/* Pasted documents: the same one passes whatever the white space, one
 * with a sentence dropped or a word swapped does not. */
static void test_documents(void **state)
{
    static const char *doc =
        "Summarise the following text:\n\nThe order confirmation promised "
        "delivery within five working days, but the parcel arrived nearly "
        "three weeks later. I contacted your customer service team by chat "
        "and was told that someone would call me back, which never "
        "happened. When the parcel finally arrived, the bowl inside was "
        "broken and the packaging was damaged. I attach photographs of the "
        "damaged packaging and the broken bowl.";
    static const char *doc_spaces =
        "Summarise the following text:\n\nThe order confirmation promised "
        "delivery within five working days,  but the parcel arrived nearly "
        "three weeks later.\nI contacted your customer service team by chat "
        "and was told that someone would call me back, which never "
        "happened.\n\nWhen the parcel finally arrived, the bowl inside was "
        "broken and the packaging was damaged. I attach photographs of the "
        "damaged packaging and the broken bowl.  ";
    static const char *doc_more =
        "Summarise the following text:\n\nThe order confirmation promised "
        "delivery within five working days, but the parcel arrived nearly "
        "three weeks later. I contacted your customer service team by chat "
        "and was told that someone would call me back, which never "
        "happened. When the parcel finally arrived, the bowl inside was "
        "broken and the packaging was damaged. I attach photographs of the "
        "damaged packaging and the broken bowl. Please confirm by email how "
        "you intend to resolve this matter.";
    static const char *doc_word =
        "Summarise the following text:\n\nThe order confirmation promised "
        "delivery within five working days, but the parcel arrived nearly "
        "three weeks later. I contacted your customer service team by chat "
        "and was told that someone would call me back, which never "
        "happened. When the parcel finally arrived, the vase inside was "
        "broken and the packaging was damaged. I attach photographs of the "
        "damaged packaging and the broken bowl.";
    static const char *zh =
        "请用三句话概括下面这段文字：\n云笔记正式上线，新增离线编辑功能，"
        "没有网络时也可以修改笔记。离线期间的修改会在设备重新联网后自动同步"
        "到云端。共享笔记本的成员可以看到彼此的实时编辑光标，"
        "多人协作更加顺畅。";
    static const char *zh_less =
        "请用三句话概括下面这段文字：\n云笔记正式上线，新增离线编辑功能，"
        "没有网络时也可以修改笔记。离线期间的修改会在设备重新联网后自动同步"
        "到云端。";
    const pair_t p[] = {
        {doc, doc_spaces, "ok"},
        {doc, doc_more, "content differs"},
        {doc, doc_word, "content differs"},
        {zh, zh_less, "content differs"},
    };

    (void)state;
    CHECK(p);
}

static void test_edges(void **state)
{
    cs_verify_result_t r;
    char *big;

    (void)state;
    /* invalid bytes, NULs, lone backticks: no crash, a verdict */
    assert_int_equal(cs_verify("\xff\xfe`", 3, "\xff\xfe`", 3, &r), CS_OK);
    assert_int_equal(r.ok, 1);
    assert_int_equal(cs_verify("a\0b", 3, "a\0c", 3, &r), CS_OK);
    /* a text beyond the normaliser's limit */
    big = malloc(CS_NORM_MAX_INPUT + 1);
    assert_non_null(big);
    memset(big, 'a', CS_NORM_MAX_INPUT + 1);
    assert_int_equal(cs_verify(big, CS_NORM_MAX_INPUT + 1, "a", 1, &r),
                     CS_ERR);
    assert_int_equal(r.ok, 0);
    assert_string_equal(r.reason, "text too long");
    free(big);
    /* a long prompt against itself with one number changed */
    {
        size_t n = 20000, i;
        char *x = malloc(n + 1), *y;
        for (i = 0; i < n; i++) {
            x[i] = "The Quick brown fox 42 jumps; "[i % 30];
        }
        x[n] = '\0';
        y = strdup(x);
        assert_int_equal(cs_verify(x, n, y, n, &r), CS_OK);
        assert_int_equal(r.ok, 1);
        y[n / 2] = y[n / 2] == '4' ? '5' : y[n / 2];
        y[n / 3 - (n / 3) % 30 + 20] = '7';
        assert_int_equal(cs_verify(x, n, y, n, &r), CS_OK);
        assert_int_equal(r.ok, 0);
        assert_string_equal(r.reason, "numbers differ");
        free(x);
        free(y);
    }
}

static uint64_t rng = 0x243F6A8885A308D3ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void test_fuzz(void **state)
{
    static const char *const pieces[] = {
        "What", " is", " the", " capital", " of", " France", " Spain", "?",
        " not", " n't", " 3", ".14", ",000", "%", " two", " hundred", "-",
        " to", " into", " ->", " JSON", " yaml", " Python", " `x_y`",
        "\n```\ncode\n```\n", " getName(", " 法国", "的", "首都", "不", "三十",
        "万", "一下", "中译英", "转换成", "摄氏度", "省", "市", "国", " ",
        "\xff", "\xe4\xb8", "Ａ", "**", "_", "C", "++", "#", "'", "’s",
        " Go", " R", "e.g.", " 1,2345", "百分之", "两", "〇"
    };
    char a[512], b[512];
    int round;

    (void)state;
    for (round = 0; round < FUZZ_ROUNDS; round++) {
        size_t la = 0, lb = 0, k, parts;
        cs_verify_result_t r1, r2;

        if (round % 4 == 0) {
            la = rnd() % 64;
            lb = rnd() % 64;
            for (k = 0; k < la; k++) {
                a[k] = (char)rnd();
            }
            for (k = 0; k < lb; k++) {
                b[k] = (char)rnd();
            }
        }
        else {
            parts = rnd() % 16;
            for (k = 0; k < parts; k++) {
                const char *p = pieces[rnd() % (sizeof(pieces)
                                                / sizeof(pieces[0]))];
                size_t pl = strlen(p);
                memcpy(a + la, p, pl);
                la += pl;
            }
            parts = rnd() % 16;
            for (k = 0; k < parts; k++) {
                const char *p = pieces[rnd() % (sizeof(pieces)
                                                / sizeof(pieces[0]))];
                size_t pl = strlen(p);
                memcpy(b + lb, p, pl);
                lb += pl;
            }
        }
        assert_int_equal(cs_verify(a, la, b, lb, &r1), CS_OK);
        assert_int_equal(cs_verify(b, lb, a, la, &r2), CS_OK);
        assert_int_equal(r1.ok, r2.ok);
        assert_int_equal(cs_verify(a, la, a, la, &r1), CS_OK);
        assert_int_equal(r1.ok, 1);
    }
}

static void *thread_verify(void *arg)
{
    cs_verify_result_t r;
    int k, *bad = arg;

    for (k = 0; k < 200; k++) {
        cs_verify("Capital of France?", 18, "capital of Spain", 16, &r);
        *bad += r.ok != 0 || strcmp(r.reason, "entities differ") != 0;
        cs_verify("用Python写快速排序", 24, "用python写快速排序", 24, &r);
        *bad += r.ok != 1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[TEST_THREADS];
    int bad[TEST_THREADS] = {0};
    int i;

    (void)state;
    for (i = 0; i < TEST_THREADS; i++) {
        pthread_create(&th[i], NULL, thread_verify, &bad[i]);
    }
    for (i = 0; i < TEST_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(bad[i], 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_english_pass),
        cmocka_unit_test(test_english_fail),
        cmocka_unit_test(test_chinese_pass),
        cmocka_unit_test(test_chinese_fail),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_fuzz),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
