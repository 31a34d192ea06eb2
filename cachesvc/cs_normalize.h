/* ark-cached: text normalisation for the "normalized exact" cache layer.
 *
 * Two lookup texts that differ only in ways that cannot change the answer
 * (letter case, full-width forms, white space, markdown decoration) are
 * normalised to the same bytes, so the cache can answer the second from
 * the first without an embedding. A false hit is worse than a miss, so
 * every rule below only removes differences that are meaningless for an
 * LLM prompt, and code is never touched.
 *
 * What cs_normalize does, in order of the data flow:
 *   1. Code is found first and copied byte for byte: ``` fenced blocks
 *      (a line whose first non-blank characters are three or more
 *      backticks, up to a line holding only as many backticks, or to the
 *      end) and inline spans (a run of N backticks up to the next run of
 *      exactly N). The fences and backticks themselves are kept.
 *   2. The prose outside code is decoded from UTF-8 (an invalid byte is
 *      kept as it is and treated as a symbol) and mapped character by
 *      character:
 *      - case folding (Unicode simple folding, plus U+00DF and U+1E9E to
 *        "ss") for ASCII, Latin-1, Latin Extended-A/B, Latin Extended
 *        Additional, Greek and Coptic, Cyrillic and Cyrillic Supplement,
 *        and the Kelvin, Angstrom and Ohm signs; U+0130 (I with dot)
 *        folds to a plain "i";
 *      - full-width forms U+FF01..U+FF5E to ASCII, so the full-width
 *        comma U+FF0C is ",", "？" is "?" and "Ａ" is "a"; except U+FF40
 *        (full-width grave accent), which is left alone because turning it
 *        into a backtick would create code spans that were not there;
 *        U+FFE0..U+FFE6 (￠ ￡ ￢ ￣ ￤ ￥ ￦) to their ordinary forms;
 *        U+3000 (ideographic space) is white space;
 *      - the Latin ligatures U+FB00..U+FB06 (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ) and U+017F
 *        (long s) to plain letters, U+00B5 (micro) to Greek mu;
 *      - a Latin, Greek or Cyrillic base letter followed by one combining
 *        mark that has a precomposed form is composed (e + U+0301 is é).
 *      Deliberately NOT mapped, unlike NFKC: CJK punctuation outside the
 *      full-width block (。 、 「 」 《 》 【 】 stay as they are, so "。" is
 *      not "."), superscripts and subscripts (x² is not x2), circled and
 *      parenthesised digits (① is not 1), fractions, half-width katakana,
 *      and Greek Extended (polytonic) letters. Each of these either
 *      carries meaning or is too rare to be worth a table.
 *   3. Markdown decoration outside code is removed:
 *      - at the start of a line, after blanks, any sequence of: heading
 *        marks "#".."######", quote marks ">", bullets "-", "*", "+", "•",
 *        and ordered-list numbers of 1 to 3 digits with "." or ")"; each
 *        only when white space follows it (so "#include", ">=" and "-5"
 *        stay);
 *      - emphasis: a run of 1 to 3 "*" or "_" that opens before a word
 *        character and is not preceded by one, closed by the first run
 *        of the same length that follows a non-blank character and is not
 *        followed by a word character, before any fenced block. So
 *        "**bold**", "*em*" and "__two words__" lose their marks while
 *        "n * 2", "n ** 2", "2*3", "a_b" and "*args, **kwargs" stay as
 *        they are. "*" may also sit between CJK characters
 *        ("很**重要**的"). "_" emphasis must wrap more than one word: a
 *        single underscore-wrapped word ("__init__", "_id_") cannot be
 *        told from an identifier and is kept.
 *   4. Every run of white space (Unicode White_Space, and U+FEFF) outside
 *      code becomes one space; the text is trimmed. A fenced block is
 *      separated from the prose around it by one newline instead, so it
 *      is still a fenced block when normalised again.
 *   Trailing punctuation is kept ("what is x?" is not "what is x").
 *
 * Idempotence: cs_normalize(cs_normalize(x)) == cs_normalize(x). The pass
 * above is built for that, but removing markup can reveal new markup
 * ("**1.** x" leaves a list number at the start of a line; a heading
 * mark in front of a code span leaves a fence), so a pass that removed
 * markup or saw code is repeated until the text stops changing, at most
 * CS_NORM_MAX_PASSES times.
 *
 * Thread safety: the functions keep no state; any thread may call them.
 */
#ifndef CS_NORMALIZE_H
#define CS_NORMALIZE_H

#include <stddef.h>

#include "cs_common.h"

/* Longest text cs_normalize accepts: the scratch memory is about 4 bytes
 * per input byte, and no cached prompt is anywhere near this long. */
#define CS_NORM_MAX_INPUT ((size_t)16 * 1024 * 1024)

/* Most passes of the fixpoint loop. Text with markup settles after 2;
 * random markdown-heavy strings built to nest marks need up to 4 (in 13
 * million of them, 2 needed the 4th and none needed a 5th). */
#define CS_NORM_MAX_PASSES 4

/* Flags for cs_normalize_opts. */
#define CS_NORM_KEEP_CASE 0x1u  /* no case folding (everything else stays) */
#define CS_NORM_PLAIN 0x2u      /* no markdown and no code: all is prose */

/* Normalises text (len bytes, any bytes; need not be NUL-terminated) into
 * out, as described above.
 *   out   initialised with cs_buf_init; its content is replaced by the
 *         normalised UTF-8 text, out->len bytes (out->data may stay NULL
 *         when that is 0). It must not point into text.
 * Returns CS_OK, or CS_ERR when len exceeds CS_NORM_MAX_INPUT (out is
 * then empty). */
int cs_normalize(const char *text, size_t len, cs_buf_t *out);

/* cs_normalize with flags (CS_NORM_*; 0 gives cs_normalize). The
 * verifier uses CS_NORM_KEEP_CASE to see capitals; CS_NORM_PLAIN folds a
 * single word without any markdown rule. Same parameters and returns. */
int cs_normalize_opts(const char *text, size_t len, unsigned flags,
                      cs_buf_t *out);

/* Kinds of piece reported by cs_normalize_pieces. */
#define CS_NORM_PROSE 0
#define CS_NORM_SPAN 1    /* inline code span, backticks included */
#define CS_NORM_BLOCK 2   /* fenced block, both fences included */

/* Receives one piece: kind (CS_NORM_*) and its place in the text. */
typedef void cs_norm_piece_cb(void *ctx, int kind, size_t off, size_t len);

/* Cuts text (len bytes, normalised or not) into prose and code exactly as
 * cs_normalize does, calling cb for each piece in order; the pieces are
 * consecutive and cover the whole text. For readers of normalised text
 * (the verifier) that must not take code for prose. */
void cs_normalize_pieces(const char *text, size_t len,
                         cs_norm_piece_cb *cb, void *ctx);

#endif /* CS_NORMALIZE_H */
