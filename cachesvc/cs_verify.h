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
 * capitals are needed to see names). Then, per class:
 *   numbers      multiset of numbers: digits with a sign, decimals,
 *                thousands separators ("1,000" is 1000), percentages
 *                ("50%", "50 percent", "百分之五十"), English number words
 *                ("two", "twenty-five"; a lone "one" is not a number),
 *                Chinese numerals ("三十五", "两千", "3万"; "一下", "一个",
 *                "万一", "十分" are words, not numbers)
 *   entities     names: capitalised words that are not common English
 *                words (at any position: "Paris", "iPhone", "NASA"), and
 *                a built-in gazetteer of countries, cities, provinces and
 *                continents in English (any case) and Chinese, plus the
 *                Chinese suffix rule X省 / X市 / X国 / X州 / X县. Each name
 *                found in either text must occur equally often in both,
 *                case-insensitively, so "capital of france" still matches
 *                "capital of France"
 *   negation     count of negations: not, no, never, none, nothing,
 *                nobody, neither, nor, without, except, cannot, *n't;
 *                不 没 无 非 别 未 勿 (not inside words such as 非常, 特别,
 *                区别, 未来, 无论)
 *   code         fenced blocks: equal contents (white space collapsed);
 *                identifiers: words inside inline code, words with "_" or
 *                an inner ".", camelCase, words followed by "(" (counted
 *                case-sensitively), and language keywords ("lambda",
 *                "struct", "string", "array", ...; case-insensitively)
 *   language     the script the text is written in (Latin, CJK, Cyrillic,
 *                ...), and the set of languages asked for: programming
 *                (python, java, javascript, typescript, go, rust, c, c++,
 *                c#, sql, shell, ...) and natural ("English", "用中文",
 *                "翻译成英文", ...)
 *   format       the set of output formats asked for: json, yaml, xml,
 *                csv, markdown, table/表格, html, ...
 *   direction    ordered pairs "X to Y", "X into Y", "X -> Y", "X译Y",
 *                "X转换成Y", ... where X and Y are languages, formats,
 *                units, currencies, data types, names or numbers:
 *                "celsius to fahrenheit" is not "fahrenheit to celsius",
 *                中译英 is not 英译中
 * Filler ("please", "can you", "请", "帮我") belongs to no class, so it
 * never matters, nor does word order outside direction pairs.
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
    const char *reason;   /* a literal: "ok", "numbers differ", "entities
                           * differ", "negation differs", "code
                           * identifiers differ", "language differs",
                           * "format differs", "direction differs", or
                           * "text too long" */
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
