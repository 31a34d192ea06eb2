/* ark-cached: verification of a semantic hit.
 *
 * The vector search only says two texts look alike; "capital of France"
 * and "capital of Spain" look very alike. Before a cached answer is
 * served for a new query, cs_verify compares the salient tokens of the
 * query and of the cached entry's text, class by class, and refuses on
 * the first class that differs. A false hit is worse than a miss, so
 * every doubt refuses.
 *
 * Both texts are first normalised (cs_normalize with CS_NORM_KEEP_CASE:
 * capitals are needed to see names). Then, per class, in this order:
 *   language     the script the text is written in (Latin, CJK, Cyrillic,
 *                ...): a Chinese query never gets an English answer
 *   numbers      multiset of numbers: digits with a sign, decimals,
 *                thousands separators ("1,000" is 1000), percentages
 *                ("50%", "50 percent", "百分之五十"), English number words
 *                ("two", "twenty-five"; a lone "one" is not a number),
 *                Chinese numerals ("三十五", "两千", "3万"; "一下", "一个",
 *                "万一", "十分" are words, not numbers)
 *   entities     names: capitalised words that are not common English
 *                words (at any position: "Paris", "NASA"; not in a text
 *                written mostly in capitals), every Latin word of a
 *                Chinese text, and a built-in gazetteer of countries,
 *                cities, provinces and continents in English (any case)
 *                and Chinese, plus the Chinese suffix rule X省 / X市 / X县
 *                / X国 / X州. Each name found in either text must occur
 *                equally often in both, case-insensitively, so "capital
 *                of france" still matches "capital of France"
 *   negation     count of negations: not, no, never, none, nothing,
 *                nobody, neither, nor, without, except, cannot, *n't;
 *                不 没 无 非 别 未 勿 (not inside words such as 非常, 特别,
 *                区别, 未来, 无论, nor in questions such as 能不能, 有没有)
 *   code         fenced blocks: equal contents (white space collapsed);
 *                identifiers: words inside inline code, words with "_" or
 *                an inner ".", camelCase, words followed by "(" (counted
 *                case-sensitively), and language keywords ("lambda",
 *                "struct", "string", "array", ...; case-insensitively);
 *                operators between operands ("n * 2" is not "n ** 2",
 *                "i <= n" not "i < n"; a hyphen, "15%" or "---" are not
 *                operators)
 *   language     the set of languages asked for: programming (python,
 *                java, javascript, typescript, go, rust, c, c++, c#, sql,
 *                shell, ...) and natural ("English", "用中文", "翻译成英文")
 *   format       the set of output formats asked for: json, yaml, xml,
 *                csv, markdown, table/表格, html, sentence/一句话,
 *                paragraph/一段话, poem, ...
 *   direction    (1) ordered pairs around a connector ("to", "into",
 *                "than", "->", 转换成, 到, 比, 等于, "X译Y"): the nearest
 *                item on each side within a few unimportant words, so
 *                "celsius to fahrenheit" is not "fahrenheit to celsius"
 *                and 中译英 is not 英译中; a pair that the other text
 *                resolves differently refuses, one typo in a word of five
 *                letters or more is forgiven; (2) the salient things both
 *                texts hold (numbers, names, languages, formats, units)
 *                come in the same order: "10 divided by 4" is not "4
 *                divided by 10", "from account A to account B" not the
 *                reverse
 *   content      only for long texts (a pasted document: at least 20
 *                uncommon words, CJK characters or operators): the
 *                content tokens of the two may differ by one at most, as
 *                a summary or a review depends on every sentence
 * Filler ("please", "can you", "thx", "请", "帮我") belongs to no class, so
 * it never matters, nor does word order outside direction.
 *
 * Thread safety: cs_verify may be called from any thread; the built-in
 * word lists are indexed once, on first use.
 */
#ifndef CS_VERIFY_H
#define CS_VERIFY_H

#include <stddef.h>

#include "cs_common.h"

typedef struct cs_verify_result {
    int ok;               /* 1: the cached answer may be served */
    const char *reason;   /* a literal: "ok", "language differs",
                           * "numbers differ", "entities differ",
                           * "negation differs", "code identifiers
                           * differ", "format differs", "direction
                           * differs", "content differs", or "text too
                           * long" */
} cs_verify_result_t;

/* Compares the salient tokens of query (qlen bytes) and cand (clen bytes,
 * the text the cached answer was stored for); neither needs to be
 * NUL-terminated, any bytes are accepted.
 *   res  receives ok and reason (never NULL on return).
 * Returns CS_OK, or CS_ERR when a text is longer than CS_NORM_MAX_INPUT
 * (res->ok is then 0 and res->reason "text too long"). */
int cs_verify(const char *query, size_t qlen, const char *cand, size_t clen,
              cs_verify_result_t *res);

#endif /* CS_VERIFY_H */
