/* ark-cached: the builtin embedder (hashed features, no model weights).
 *
 * A text becomes a vector in four steps:
 *   1. cs_normalize: case folded, full-width folded, markdown removed,
 *      white space collapsed; code is kept (its ASCII letters are folded
 *      while hashing, so `Foo` and `foo` land together).
 *   2. Tokens: words (letters, digits, "_"), CJK characters, and runs of
 *      symbols ("?", "**", "->").
 *   3. Features, each with a base weight, counted in a per-call table:
 *        word unigram        1.0   (stop word: 0.15, and nothing below;
 *                                  a plural "s" is dropped: "reverses"
 *                                  and "reverse" are one feature)
 *        word bigram         0.8   consecutive non-stop words, in order,
 *                                  so "celsius to fahrenheit" and
 *                                  "fahrenheit to celsius" differ
 *        char 3- and 4-grams 0.6   per distinct non-stop word, over
 *                                  "^word$", split evenly over its
 *                                  n-grams (typos and inflections still
 *                                  share most of them)
 *        CJK char unigram    0.7   (stop character: 0.1); a single
 *                                  character is often a word (狗, 猫)
 *        CJK char bigram     1.0   (with a stop character: 0.4); Chinese
 *                                  words are mostly two characters, so
 *                                  bigrams play the part of words
 *        symbol run          0.1
 *        number              0.15  digits only, like a stop word: the
 *                                  verifier compares numbers exactly, so
 *                                  "3" and "three" need not pull apart
 *      A feature seen tf times weighs base * (1 + ln tf): repetition
 *      counts, sublinearly.
 *   4. The hashing trick: a 64-bit hash of the feature (FNV-1a, then the
 *      murmur3 finaliser, seeded per feature kind) picks a bucket (low 32
 *      bits, scaled to dim) and a sign (top bit); signed weights are
 *      summed per bucket and the vector is L2-normalised. A text without
 *      features (empty, only white space) gets the unit vector e0.
 * Worked example, "Convert Celsius to Fahrenheit, please": words convert,
 * celsius, fahrenheit (1.0 each), stop words to, please (0.15 each),
 * bigrams convert>celsius and celsius>fahrenheit (0.8), the symbol ","
 * (0.25), and the n-grams of each content word, 0.6 spread over them (for
 * celsius: ^ce cel els lsi siu ius us$ ^cel cels elsi lsiu sius ius$).
 *
 * The weights favour words over n-grams (a near-duplicate shares words;
 * unrelated texts share n-grams by chance), and stop words are kept but
 * faint so "capital of France" and "France capital" stay close.
 * Thread safety: the embedder holds only read-only data after creation;
 * each call has its own scratch memory.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cs_embed_impl.h"
#include "cs_normalize.h"
#include "cs_utf8.h"

/* Feature weights (see above). */
#define W_WORD 1.0f
#define W_STOP 0.15f
#define W_BIGRAM 0.8f
#define W_CHAR 0.6f
#define W_CJK_CHAR 0.7f
#define W_CJK_CHAR_STOP 0.1f
#define W_CJK_BIGRAM 1.0f
#define W_CJK_BIGRAM_STOP 0.4f
#define W_SYMBOL 0.1f
#define W_NUMBER 0.15f

/* Words longer than this (in code points) get no character n-grams:
 * they are hashes, URLs or base64, whose n-grams carry no meaning and
 * would cost time. */
#define NGRAM_MAX_WORD 40

/* Shortest word whose final "s" is dropped for its word feature. */
#define PLURAL_MIN_LEN 4

/* Version of the feature scheme: bump it whenever a change here changes
 * any vector, so indexes built with the old scheme are rebuilt. */
#define BUILTIN_SCHEME 1

/* Slots of the stop word set: a power of two, at least twice the number
 * of stop words and stop characters. */
#define STOP_SLOTS 512

/* First size of the per-call feature table (a power of two); it doubles
 * whenever it is half full. */
#define FEAT_SLOTS_MIN 256

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* Feature kinds, mixed into the hash so that the word "ab" and the
 * n-gram "ab" are different features. */
enum {
    F_WORD = 1,
    F_BIGRAM,
    F_NGRAM,
    F_CJK,
    F_CJK_BIGRAM,
    F_SYMBOL
};

/* English stop words, as the normaliser leaves them (lower case):
 * function words, request and politeness filler ("please", "thx",
 * "quick question"), and number words (numbers are the verifier's job).
 * Question words and negations are not here: they change the answer.
 * "to", "from" and "into" are, because the order of the content words
 * around them (the bigrams) already carries the direction. */
static const char *const stop_words[] = {
    "a", "an", "the", "of", "to", "in", "on", "at", "for", "from", "by",
    "with", "about", "as", "into", "onto", "is", "are", "was", "were", "be",
    "been", "being", "am", "do", "does", "did", "have", "has", "had", "i",
    "me", "my", "you", "your", "we", "us", "our", "he", "him", "his", "she",
    "her", "it", "its", "they", "them", "their", "this", "that", "these",
    "those", "there", "here", "please", "kindly", "can", "could", "would",
    "should", "will", "shall", "may", "might", "must", "just", "tell",
    "give", "show", "let", "s", "t", "d", "ll", "re", "ve", "m", "so",
    "very", "really", "also", "some", "any", "and", "or", "but", "if",
    "then", "than", "thanks", "thank", "hi", "hello", "hey", "help", "want",
    "need", "know", "like", "explain", "describe", "um", "ok",
    "okay", "question", "quick", "quickly", "wondering", "wonder",
    "curious", "pls", "plz", "thx", "ty", "btw", "advance", "dear",
    "anyone", "someone", "maybe", "perhaps", "actually", "basically",
    /* number words, like digits (see is_number) */
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
    "nine", "ten", "eleven", "twelve", "twenty", "thirty", "forty", "fifty",
    "hundred", "thousand", "million", "billion"
};

/* Chinese stop characters: particles, pronouns and politeness. */
static const uint32_t stop_cjk[] = {
    0x7684 /* 的 */, 0x4E86 /* 了 */, 0x662F /* 是 */, 0x5417 /* 吗 */,
    0x5462 /* 呢 */, 0x5427 /* 吧 */, 0x554A /* 啊 */, 0x5440 /* 呀 */,
    0x4E48 /* 么 */, 0x8BF7 /* 请 */, 0x5E2E /* 帮 */, 0x6211 /* 我 */,
    0x4F60 /* 你 */, 0x60A8 /* 您 */, 0x4ED6 /* 他 */, 0x5979 /* 她 */,
    0x5B83 /* 它 */, 0x4EEC /* 们 */, 0x4E0B /* 下 */, 0x4E2A /* 个 */,
    0x8FD9 /* 这 */, 0x90A3 /* 那 */, 0x5728 /* 在 */, 0x548C /* 和 */,
    0x4E0E /* 与 */, 0x53CA /* 及 */, 0x5C31 /* 就 */, 0x4E5F /* 也 */,
    0x90FD /* 都 */, 0x628A /* 把 */, 0x88AB /* 被 */, 0x7ED9 /* 给 */,
    0x8BA9 /* 让 */, 0x80FD /* 能 */, 0x53EF /* 可 */, 0x4EE5 /* 以 */,
    0x4F1A /* 会 */, 0x8981 /* 要 */, 0x60F3 /* 想 */, 0x95EE /* 问 */,
    0x8C22 /* 谢 */, 0x5730 /* 地 */, 0x5F97 /* 得 */, 0x7740 /* 着 */,
    0x9EBB /* 麻 */, 0x70E6 /* 烦 */, 0x4E00 /* 一 */,
    /* numerals: the verifier compares numbers exactly; here 三 and 3
     * should not pull a text apart */
    0x4E8C /* 二 */, 0x4E24 /* 两 */, 0x4E09 /* 三 */, 0x56DB /* 四 */,
    0x4E94 /* 五 */, 0x516D /* 六 */, 0x4E03 /* 七 */, 0x516B /* 八 */,
    0x4E5D /* 九 */, 0x5341 /* 十 */, 0x767E /* 百 */, 0x5343 /* 千 */,
    0x4E07 /* 万 */, 0x96F6 /* 零 */
};

typedef struct {
    cs_embedder_t base;
    int dim;
    char version[48];
    uint64_t stop[STOP_SLOTS];   /* set of stop keys; 0 = empty slot */
} builtin_t;

/* One feature of the text being embedded. */
typedef struct {
    uint64_t key;                /* 0 = empty slot */
    float w;                     /* base weight */
    uint32_t tf;
    uint32_t off;                /* word features: where the word is */
    uint16_t len;
    uint16_t ngrams;             /* 1: add the word's n-grams */
} feat_t;

typedef struct {
    feat_t *slots;
    size_t mask;
    size_t used;
} feats_t;

/* ---- hashing ---------------------------------------------------------- */

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

/* FNV-1a over s with ASCII letters folded (code keeps its case). */
static uint64_t fnv_fold(uint64_t h, const unsigned char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c += 32;
        }
        h ^= c;
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t feature_key(int kind, uint64_t h)
{
    uint64_t k = fmix64(h ^ ((uint64_t)kind * 0x9E3779B97F4A7C15ull));

    return k ? k : 1;
}

/* ---- stop words ------------------------------------------------------- */

static void stop_add(builtin_t *b, uint64_t key)
{
    size_t i = (size_t)key & (STOP_SLOTS - 1);

    while (b->stop[i] != 0 && b->stop[i] != key) {
        i = (i + 1) & (STOP_SLOTS - 1);
    }
    b->stop[i] = key;
}

static int stop_has(const builtin_t *b, uint64_t key)
{
    size_t i = (size_t)key & (STOP_SLOTS - 1);

    while (b->stop[i] != 0) {
        if (b->stop[i] == key) {
            return 1;
        }
        i = (i + 1) & (STOP_SLOTS - 1);
    }
    return 0;
}

/* Keys of the stop set: the word's FNV hash, or the character with the
 * top bit set (never an FNV value of a real word, in practice). */
static uint64_t cjk_stop_key(uint32_t cp)
{
    return 0x8000000000000000ull | cp;
}

/* ---- the feature table ------------------------------------------------ */

static void feats_init(feats_t *f, size_t text_len)
{
    size_t n = FEAT_SLOTS_MIN;

    while (n < text_len / 4) {
        n *= 2;
    }
    f->slots = cs_calloc(n, sizeof(*f->slots));
    f->mask = n - 1;
    f->used = 0;
}

static feat_t *feats_slot(feat_t *slots, size_t mask, uint64_t key)
{
    size_t i = (size_t)key & mask;

    while (slots[i].key != 0 && slots[i].key != key) {
        i = (i + 1) & mask;
    }
    return &slots[i];
}

static void feats_grow(feats_t *f)
{
    size_t n = (f->mask + 1) * 2, i;
    feat_t *slots = cs_calloc(n, sizeof(*slots));

    for (i = 0; i <= f->mask; i++) {
        if (f->slots[i].key != 0) {
            *feats_slot(slots, n - 1, f->slots[i].key) = f->slots[i];
        }
    }
    cs_free(f->slots);
    f->slots = slots;
    f->mask = n - 1;
}

static void feats_add(feats_t *f, int kind, uint64_t h, float w,
                      size_t off, size_t len, int ngrams)
{
    uint64_t key = feature_key(kind, h);
    feat_t *s;

    if (2 * (f->used + 1) > f->mask + 1) {
        feats_grow(f);
    }
    s = feats_slot(f->slots, f->mask, key);
    if (s->key == key) {
        s->tf++;
        return;
    }
    s->key = key;
    s->w = w;
    s->tf = 1;
    s->off = (uint32_t)off;
    s->len = (uint16_t)len;
    s->ngrams = (uint16_t)ngrams;
    f->used++;
}

/* ---- from text to features -------------------------------------------- */

static int is_word_char(uint32_t cp)
{
    return cp == '_' || (cs_uc_is_word(cp) && !cs_uc_is_cjk(cp));
}

/* Digits only: "3", "1000", "000" (of "1,000"). The verifier compares
 * numbers exactly, so here "3" and "three" should not pull texts apart. */
static int is_number(const unsigned char *w, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (w[i] < '0' || w[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* An English plural or third-person "s" that can go: "reverses" and
 * "reverse" are one word feature (their n-grams stay as written). Not
 * after s, u or i ("class", "status", "analysis") nor on short words
 * ("bus", "gas"). */
static int plural_s(const unsigned char *w, size_t len)
{
    unsigned char c;

    if (len < PLURAL_MIN_LEN || w[len - 1] != 's') {
        return 0;
    }
    c = w[len - 2];
    return c >= 'a' && c <= 'z' && c != 's' && c != 'u' && c != 'i';
}

/* Cuts the normalised text s into tokens and counts their features. */
static void extract(const builtin_t *b, const unsigned char *s, size_t n,
                    feats_t *f)
{
    size_t i = 0;
    uint64_t prev_word = 0;         /* hash of the last content word */
    uint32_t prev_cjk = 0;          /* the CJK character just before */

    while (i < n) {
        uint32_t cp;
        size_t k = cs_utf8_decode(s + i, n - i, &cp), start = i;

        if (k == 0) {
            cp = 0xFFFD;            /* an invalid byte: a symbol */
            k = 1;
        }
        if (cs_uc_is_space(cp)) {
            prev_cjk = 0;
            i += k;
            continue;
        }
        if (cs_uc_is_cjk(cp)) {
            int stop = stop_has(b, cjk_stop_key(cp));
            feats_add(f, F_CJK, cp, stop ? W_CJK_CHAR_STOP : W_CJK_CHAR, 0,
                      0, 0);
            if (prev_cjk) {
                int stop2 = stop || stop_has(b, cjk_stop_key(prev_cjk));
                feats_add(f, F_CJK_BIGRAM, ((uint64_t)prev_cjk << 32) | cp,
                          stop2 ? W_CJK_BIGRAM_STOP : W_CJK_BIGRAM, 0, 0, 0);
            }
            prev_cjk = cp;
            prev_word = 0;
            i += k;
            continue;
        }
        prev_cjk = 0;
        if (is_word_char(cp)) {
            uint64_t h;
            size_t len;

            i += k;
            while (i < n && (k = cs_utf8_decode(s + i, n - i, &cp)) != 0
                   && is_word_char(cp)) {
                i += k;
            }
            len = i - start;
            h = fnv_fold(FNV_OFFSET, s + start, len);
            if (is_number(s + start, len)) {
                feats_add(f, F_WORD, h, W_NUMBER, 0, 0, 0);
                continue;
            }
            if (stop_has(b, h)) {
                feats_add(f, F_WORD, h, W_STOP, 0, 0, 0);
                continue;
            }
            if (plural_s(s + start, len)) {
                h = fnv_fold(FNV_OFFSET, s + start, len - 1);
            }
            feats_add(f, F_WORD, h, W_WORD, start, len,
                      len <= NGRAM_MAX_WORD * 4);
            if (prev_word) {
                feats_add(f, F_BIGRAM, prev_word * FNV_PRIME ^ h, W_BIGRAM,
                          0, 0, 0);
            }
            prev_word = h;
            continue;
        }
        /* a run of symbols (invalid bytes included) */
        i += k;
        while (i < n) {
            k = cs_utf8_decode(s + i, n - i, &cp);
            if (k == 0) {
                k = 1;
            }
            else if (cs_uc_is_space(cp) || cs_uc_is_cjk(cp)
                     || is_word_char(cp)) {
                break;
            }
            i += k;
        }
        feats_add(f, F_SYMBOL, fnv_fold(FNV_OFFSET, s + start, i - start),
                  W_SYMBOL, 0, 0, 0);
    }
}

static void bucket_add(float *v, int dim, uint64_t key, float w)
{
    uint32_t idx = (uint32_t)(((key & 0xFFFFFFFFull) * (uint64_t)dim) >> 32);

    v[idx] += (key >> 63) ? -w : w;
}

/* Adds the 3- and 4-grams of "^word$" (the word: len bytes at s), w
 * spread evenly over them. */
static void add_ngrams(float *v, int dim, const unsigned char *s,
                       size_t len, float w)
{
    size_t pos[NGRAM_MAX_WORD + 3];  /* symbol starts: ^, chars, $, end */
    size_t nsym = 0, i = 0, g, n;
    unsigned count = 0;
    float each;

    /* symbol j is bytes [pos[j], pos[j+1]) of a virtual "\x02word\x03" */
    pos[nsym++] = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = cs_utf8_decode(s + i, len - i, &cp);
        if (nsym > NGRAM_MAX_WORD) {
            return;
        }
        pos[nsym++] = 1 + i;
        i += k ? k : 1;
    }
    pos[nsym++] = 1 + len;
    pos[nsym] = 2 + len;
    for (n = 3; n <= 4; n++) {
        if (nsym >= n) {
            count += (unsigned)(nsym - n + 1);
        }
    }
    if (count == 0) {
        return;
    }
    each = w / sqrtf((float)count);
    for (n = 3; n <= 4; n++) {
        for (g = 0; g + n <= nsym; g++) {
            uint64_t h = FNV_OFFSET ^ n;
            size_t a = pos[g], z = pos[g + n], j;
            for (j = a; j < z; j++) {
                unsigned char c = j == 0 ? 0x02
                                  : j == len + 1 ? 0x03 : s[j - 1];
                if (c >= 'A' && c <= 'Z') {
                    c += 32;
                }
                h = (h ^ c) * FNV_PRIME;
            }
            bucket_add(v, dim, feature_key(F_NGRAM, h), each);
        }
    }
}

static void embed_one(const builtin_t *b, const char *text, size_t len,
                      cs_buf_t *norm, float *v)
{
    const unsigned char *s;
    feats_t f;
    size_t i;

    memset(v, 0, sizeof(float) * (size_t)b->dim);
    if (cs_normalize(text, len, norm) != CS_OK) {
        /* longer than the normaliser takes: hash the raw bytes */
        cs_buf_reset(norm);
        cs_buf_append(norm, text, len);
    }
    s = (const unsigned char *)norm->data;
    feats_init(&f, norm->len);
    extract(b, s, norm->len, &f);
    for (i = 0; i <= f.mask; i++) {
        const feat_t *ft = &f.slots[i];
        float tfw;

        if (ft->key == 0) {
            continue;
        }
        tfw = 1.0f + logf((float)ft->tf);
        bucket_add(v, b->dim, ft->key, ft->w * tfw);
        if (ft->ngrams) {
            add_ngrams(v, b->dim, s + ft->off, ft->len, W_CHAR * tfw);
        }
    }
    cs_free(f.slots);
    if (cs_embed_l2_normalize(v, b->dim) != CS_OK) {
        memset(v, 0, sizeof(float) * (size_t)b->dim);
        v[0] = 1.0f;
    }
}

/* ---- the ops ---------------------------------------------------------- */

static int builtin_embed(cs_embedder_t *e, const char *const *texts,
                         const size_t *lens, int n, float *out, char *err,
                         size_t errlen)
{
    const builtin_t *b = (const builtin_t *)e;
    cs_buf_t norm;
    int i;

    (void)err;
    (void)errlen;
    cs_buf_init(&norm);
    for (i = 0; i < n; i++) {
        embed_one(b, texts[i], lens[i], &norm, out + (size_t)i * b->dim);
    }
    cs_buf_free(&norm);
    return CS_OK;
}

static const char *builtin_version(const cs_embedder_t *e)
{
    return ((const builtin_t *)e)->version;
}

static int builtin_dim(const cs_embedder_t *e)
{
    return ((const builtin_t *)e)->dim;
}

static void builtin_destroy(cs_embedder_t *e)
{
    cs_free(e);
}

static const cs_embed_ops_t builtin_ops = {
    "builtin", builtin_embed, NULL, builtin_version, builtin_dim,
    builtin_destroy
};

cs_embedder_t *cs_embed_builtin_create(int dim)
{
    builtin_t *b;
    size_t i;

    if (dim == 0) {
        dim = CS_EMBED_BUILTIN_DIM_DEFAULT;
    }
    if (dim < CS_EMBED_BUILTIN_DIM_MIN || dim > CS_EMBED_BUILTIN_DIM_MAX
        || dim % CS_EMBED_BUILTIN_DIM_STEP != 0) {
        return NULL;
    }
    b = cs_calloc(1, sizeof(*b));
    b->base.ops = &builtin_ops;
    b->dim = dim;
    snprintf(b->version, sizeof(b->version), "builtin-%d:dim=%d",
             BUILTIN_SCHEME, dim);
    for (i = 0; i < sizeof(stop_words) / sizeof(stop_words[0]); i++) {
        stop_add(b, fnv_fold(FNV_OFFSET, (const unsigned char *)stop_words[i],
                             strlen(stop_words[i])));
    }
    for (i = 0; i < sizeof(stop_cjk) / sizeof(stop_cjk[0]); i++) {
        stop_add(b, cjk_stop_key(stop_cjk[i]));
    }
    return &b->base;
}
