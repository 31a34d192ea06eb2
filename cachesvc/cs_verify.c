/* ark-cached: verification of a semantic hit (the rules are in
 * cs_verify.h).
 *
 * Data flow, for each of the two texts (a side_t):
 *   1. cs_normalize_opts(CS_NORM_KEEP_CASE), then cs_normalize_pieces:
 *      fenced blocks go to the "blocks" bag as they are (white space
 *      collapsed); prose and the inside of inline spans are tokenised
 *      into words (with case flags and their folded form), CJK runs and
 *      symbols, and scanned for numbers (digits, Chinese numerals), each
 *      kept with its place in the text.
 *   2. The tokens are read once more for the other classes: number
 *      words, name and identifier candidates, negations, languages,
 *      formats, units, the script, operators, content tokens, and the
 *      sequence of direction items and connectors.
 * Then compare() checks the classes in the order of cs_verify.h and
 * stops at the first that differs. Names and identifiers are compared by
 * counting every candidate of either side in both sides ("France" found
 * in the query is counted in the cached text too, whatever its case
 * there), so a difference in capitals alone never refuses, while a name
 * present on one side only always does. The order check then lists, per
 * side, the numbers, names (of both sides), languages, formats and units
 * by place, keeps what both have, and compares the two sequences.
 *
 * Worked example: query "Convert 100 Celsius to Fahrenheit, please",
 * cached "convert 100 fahrenheit to celsius":
 *   numbers    [100] and [100]: equal
 *   entities   none ("Celsius" is a unit, not a name): equal
 *   direction  pairs "celsius>fahrenheit" and "fahrenheit>celsius" share
 *              a side and differ: {0, "direction differs"}.
 *
 * The word lists are indexed on first use (pthread_once) and read-only
 * afterwards; everything else lives in per-call memory.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cs_normalize.h"
#include "cs_utf8.h"
#include "cs_verify.h"

/* Slots of the English word index: a power of two, at least twice the
 * number of distinct words in the lists below (about 960), so probes stay
 * short. */
#define LEX_SLOTS 4096

/* Longest Chinese numeral run read as one number; longer runs are
 * compared as text. */
#define CN_NUM_MAX_RUN 24

/* Longest digit string read as a number (its thousands separators
 * dropped, leading zeros too); longer ones are compared as written. */
#define NUM_MAX_DIGITS 64

/* Chinese numeral values beyond this are compared as written rather than
 * risk an overflow making two numbers equal. */
#define CN_NUM_MAX_VALUE 1000000000000000000ull

/* How many unimportant words or CJK characters a direction connector
 * ("to", "转换成") looks past for the item on each side: "convert a
 * string to a date", "JSON怎么转换成YAML". */
#define DIR_WINDOW 3

/* Window cost of a skipped word and of a skipped CJK character (a
 * Chinese word is about two characters). */
#define DIR_WORD_COST 2
#define DIR_CJK_COST 1

/* A text with at least this many content tokens (words that are not
 * common, CJK characters that are not particles, operators: about a
 * paragraph) is taken for a pasted document: its content must match but
 * for CONTENT_DIFF_MAX tokens, since the answer (a summary, a
 * translation, a review) depends on all of it. */
#define CONTENT_LONG_MIN 20

/* Content tokens one long text may have that the other lacks: one word
 * added or dropped passes; one word or operator replaced by another (two
 * differences) does not. */
#define CONTENT_DIFF_MAX 1

/* Shortest word in which a typo (one letter added, dropped, changed, or
 * two swapped) is forgiven when direction pairs are compared; shorter
 * words must match exactly ("cats" is not "cars"). */
#define TYPO_MIN_LEN 5

/* Share of all-capital words (in tenths) from which a text is shouting and
 * its capitals say nothing about names. */
#define SHOUT_TENTHS 6

/* Weight of one CJK character against one word of an alphabetic script
 * when deciding which script a text is written in (a Chinese word is
 * about two characters). */
#define SCRIPT_CJK_CHARS_PER_WORD 2

/* ---- word lists --------------------------------------------------------- */

enum {
    L_COMMON = 1 << 0,    /* frequent English word: never a name */
    L_NEG = 1 << 1,       /* negation */
    L_NUM = 1 << 2,       /* number word: canon holds its value */
    L_SCALE = 1 << 3,     /* hundred, thousand, ...: canon holds it */
    L_LANG = 1 << 4,      /* a language (canon: its tag) */
    L_FORMAT = 1 << 5,    /* an output format (canon) */
    L_UNIT = 1 << 6,      /* unit, currency, data type (canon) */
    L_KEYWORD = 1 << 7,   /* programming keyword */
    L_PLACE = 1 << 8,     /* gazetteer: a place */
    L_CONN = 1 << 9,      /* direction connector: "to", "into", "转换成" */
    L_CASED = 1 << 10,    /* language only when capitalised mid-sentence */
    L_PHRASE = 1 << 11,   /* first word of a place of several words */
    L_WORD = 1 << 12      /* CJK word that only hides a connector in it */
};

typedef struct {
    const char *w;
    unsigned cls;
    const char *canon;
} lex_t;

/* Frequent English words: sentence starters, request verbs, function
 * words and everyday nouns, so that "Explain", "Please" or title case
 * ("How To Write A Loop") are not taken for names. */
static const char *const common_words[] = {
    "a", "about", "above", "according", "actually", "add", "after", "again",
    "against", "ago", "all", "allow", "almost", "along", "already", "also",
    "although", "always", "am", "among", "an", "and", "another", "answer",
    "any", "anyone", "anything", "appear", "are", "area", "around", "as",
    "ask", "at", "away", "back", "bad", "be", "because", "become", "been",
    "before", "begin", "being", "believe", "below", "best", "better",
    "between", "big", "both", "bring", "build", "but", "buy", "by", "call",
    "can", "case", "change", "check", "choose", "come", "compare", "compute",
    "consider", "continue", "could", "count", "create", "day", "dear",
    "define", "describe", "detail", "details", "did", "different", "do",
    "does", "doing", "done", "down", "during", "each", "early", "easy",
    "either", "else", "end", "enough", "even", "every", "example", "explain",
    "fact", "far", "few", "find", "first", "fix", "follow", "following", "for",
    "from", "full", "further", "generate", "get", "give", "given", "go",
    "good", "great", "had", "happen", "hard", "has", "have", "having", "he",
    "hello", "help", "her", "here", "hey", "hi", "high", "him", "his", "hold",
    "how", "however", "i", "idea", "if", "important", "improve", "in",
    "include", "including", "information", "instead", "into", "is", "issue",
    "it", "its", "just", "keep", "kind", "kindly", "know", "large", "last",
    "later", "learn", "least", "leave", "less", "let", "like", "little",
    "long", "look", "lot", "lots", "main", "make", "many", "may", "maybe",
    "me", "mean", "meaning", "might", "more", "most", "much", "must", "my",
    "name", "need", "new", "next", "now", "of", "off", "often", "ok", "okay",
    "old", "on", "once", "only", "onto", "open", "or", "other", "others",
    "our", "out", "over", "own", "part", "people", "perhaps", "person",
    "place", "please", "point", "possible", "problem", "provide", "put",
    "question", "quick", "quickly", "quite", "rather", "read", "ready", "real",
    "really", "reason", "remember", "reply", "respond", "result", "right",
    "run", "same", "say", "see", "seem", "send", "set", "she", "short",
    "should", "show", "simple", "simply", "since", "small", "so", "solve",
    "some", "someone", "something", "sometimes", "soon", "sorry", "start",
    "step", "steps", "still", "stop", "such", "suggest", "summarise",
    "summarize", "summary", "sure", "take", "tell", "than", "thank", "thanks",
    "that", "the", "their", "them", "then", "there", "these", "they", "thing",
    "things", "think", "this", "those", "though", "through", "time", "times",
    "tip", "tips", "to", "today", "together", "too", "translate",
    "translation", "true", "try", "turn", "under", "understand", "until", "up",
    "upon", "us", "use", "used", "using", "usually", "very", "via", "want",
    "was", "way", "ways", "we", "well", "were", "what", "when", "where",
    "whether", "which", "while", "who", "whole", "whom", "whose", "why",
    "will", "with", "within", "work", "works", "would", "write", "writing",
    "wrong", "yes", "yet", "you", "your", "yours", "convert", "calculate",
    "list", "rewrite", "review", "draft", "edit", "correct", "text", "article",
    "paragraph", "sentence", "sentences", "word", "words", "letter", "email",
    "story", "poem", "essay", "code", "function", "program", "script", "file",
    "data", "value", "error", "test", "formula", "difference", "differences",
    "book", "books", "movie", "music", "song", "food", "water", "weather",
    "world", "life", "year", "years", "month", "week", "hour", "hours",
    "minute", "minutes", "money", "price", "cost", "number", "numbers", "city",
    "country", "capital", "language", "languages", "version", "dr", "mr",
    "mrs", "ms", "sir", "madam", "note", "task", "goal", "context",
    "assistant", "user", "system", "role", "topic", "section", "title",
    "chapter", "page", "tomorrow", "yesterday", "morning", "evening", "night",
    "thx", "ty", "pls", "plz", "btw", "fyi", "asap", "lol", "yo", "guys",
    "folks", "everyone", "quick", "wondering", "wonder", "curious", "urgent",
    "regards", "cheers", "hmm", "um", "uh", "oh", "ah", "advance", "anyway",
    "basically", "actually", "briefly", "honestly"
};

static const char *const neg_words[] = {
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither",
    "nor", "without", "except", "cannot"
};

static const lex_t number_words[] = {
    {"zero", L_NUM, "0"}, {"one", L_NUM, "1"}, {"two", L_NUM, "2"},
    {"three", L_NUM, "3"}, {"four", L_NUM, "4"}, {"five", L_NUM, "5"},
    {"six", L_NUM, "6"}, {"seven", L_NUM, "7"}, {"eight", L_NUM, "8"},
    {"nine", L_NUM, "9"}, {"ten", L_NUM, "10"}, {"eleven", L_NUM, "11"},
    {"twelve", L_NUM, "12"}, {"thirteen", L_NUM, "13"},
    {"fourteen", L_NUM, "14"}, {"fifteen", L_NUM, "15"},
    {"sixteen", L_NUM, "16"}, {"seventeen", L_NUM, "17"},
    {"eighteen", L_NUM, "18"}, {"nineteen", L_NUM, "19"},
    {"twenty", L_NUM, "20"}, {"thirty", L_NUM, "30"}, {"forty", L_NUM, "40"},
    {"fifty", L_NUM, "50"}, {"sixty", L_NUM, "60"}, {"seventy", L_NUM, "70"},
    {"eighty", L_NUM, "80"}, {"ninety", L_NUM, "90"},
    {"hundred", L_SCALE, "100"}, {"thousand", L_SCALE, "1000"},
    {"million", L_SCALE, "1000000"}, {"billion", L_SCALE, "1000000000"}
};

/* Languages, by tag. "go", "c" and "r" are languages only as "Go", "C",
 * "R" inside a sentence ("go to", "option c" are not). */
static const lex_t lang_words[] = {
    {"python", L_LANG, "python"}, {"py", L_LANG, "python"},
    {"java", L_LANG, "java"}, {"javascript", L_LANG, "javascript"},
    {"js", L_LANG, "javascript"}, {"node", L_LANG, "javascript"},
    {"nodejs", L_LANG, "javascript"}, {"typescript", L_LANG, "typescript"},
    {"ts", L_LANG, "typescript"}, {"go", L_LANG | L_CASED, "go"},
    {"golang", L_LANG, "go"}, {"rust", L_LANG, "rust"},
    {"c", L_LANG | L_CASED, "c"}, {"c++", L_LANG, "c++"},
    {"cpp", L_LANG, "c++"}, {"c#", L_LANG, "c#"}, {"csharp", L_LANG, "c#"},
    {"f#", L_LANG, "f#"}, {"sql", L_LANG, "sql"}, {"mysql", L_LANG, "sql"},
    {"postgresql", L_LANG, "sql"}, {"sqlite", L_LANG, "sql"},
    {"bash", L_LANG, "shell"}, {"shell", L_LANG, "shell"},
    {"sh", L_LANG, "shell"}, {"zsh", L_LANG, "shell"},
    {"powershell", L_LANG, "powershell"}, {"ruby", L_LANG, "ruby"},
    {"php", L_LANG, "php"}, {"kotlin", L_LANG, "kotlin"},
    {"swift", L_LANG, "swift"}, {"scala", L_LANG, "scala"},
    {"perl", L_LANG, "perl"}, {"r", L_LANG | L_CASED, "r"},
    {"haskell", L_LANG, "haskell"}, {"lua", L_LANG, "lua"},
    {"matlab", L_LANG, "matlab"}, {"dart", L_LANG, "dart"},
    {"css", L_LANG, "css"}, {"elixir", L_LANG, "elixir"},
    {"erlang", L_LANG, "erlang"}, {"clojure", L_LANG, "clojure"},
    {"julia", L_LANG, "julia"}, {"fortran", L_LANG, "fortran"},
    {"cobol", L_LANG, "cobol"}, {"assembly", L_LANG, "assembly"},
    {"english", L_LANG, "en"}, {"chinese", L_LANG, "zh"},
    {"mandarin", L_LANG, "zh"}, {"cantonese", L_LANG, "yue"},
    {"french", L_LANG, "fr"}, {"german", L_LANG, "de"},
    {"spanish", L_LANG, "es"}, {"japanese", L_LANG, "ja"},
    {"korean", L_LANG, "ko"}, {"russian", L_LANG, "ru"},
    {"italian", L_LANG, "it"}, {"portuguese", L_LANG, "pt"},
    {"arabic", L_LANG, "ar"}, {"hindi", L_LANG, "hi"},
    {"vietnamese", L_LANG, "vi"}, {"thai", L_LANG, "th"},
    {"dutch", L_LANG, "nl"}, {"turkish", L_LANG, "tr"},
    {"polish", L_LANG, "pl"}, {"swedish", L_LANG, "sv"},
    {"greek", L_LANG, "el"}, {"hebrew", L_LANG, "he"},
    {"indonesian", L_LANG, "id"}, {"ukrainian", L_LANG, "uk"},
    {"latin", L_LANG, "la"}
};

static const lex_t format_words[] = {
    {"json", L_FORMAT, "json"}, {"yaml", L_FORMAT, "yaml"},
    {"yml", L_FORMAT, "yaml"}, {"xml", L_FORMAT, "xml"},
    {"csv", L_FORMAT, "csv"}, {"tsv", L_FORMAT, "tsv"},
    {"markdown", L_FORMAT, "markdown"}, {"md", L_FORMAT, "markdown"},
    {"table", L_FORMAT, "table"}, {"tables", L_FORMAT, "table"},
    {"html", L_FORMAT, "html"}, {"toml", L_FORMAT, "toml"},
    {"latex", L_FORMAT, "latex"}, {"pdf", L_FORMAT, "pdf"},
    {"bullet", L_FORMAT, "bullets"}, {"bullets", L_FORMAT, "bullets"},
    {"bulleted", L_FORMAT, "bullets"}, {"ini", L_FORMAT, "ini"},
    {"protobuf", L_FORMAT, "protobuf"}, {"sql", L_FORMAT, "sql"},
    {"sentence", L_FORMAT, "sentence"}, {"sentences", L_FORMAT, "sentence"},
    {"paragraph", L_FORMAT, "paragraph"},
    {"paragraphs", L_FORMAT, "paragraph"}, {"essay", L_FORMAT, "essay"},
    {"poem", L_FORMAT, "poem"}, {"haiku", L_FORMAT, "haiku"},
    {"sonnet", L_FORMAT, "sonnet"}, {"limerick", L_FORMAT, "limerick"},
    {"tweet", L_FORMAT, "tweet"}, {"outline", L_FORMAT, "outline"}
};

/* Things a direction pair is made of besides languages and formats. */
static const lex_t unit_words[] = {
    {"celsius", L_UNIT, "celsius"}, {"centigrade", L_UNIT, "celsius"},
    {"fahrenheit", L_UNIT, "fahrenheit"}, {"kelvin", L_UNIT, "kelvin"},
    {"km", L_UNIT, "km"}, {"kilometers", L_UNIT, "km"},
    {"kilometres", L_UNIT, "km"}, {"kilometer", L_UNIT, "km"},
    {"kilometre", L_UNIT, "km"}, {"mile", L_UNIT, "mile"},
    {"miles", L_UNIT, "mile"}, {"meters", L_UNIT, "m"},
    {"metres", L_UNIT, "m"}, {"meter", L_UNIT, "m"}, {"metre", L_UNIT, "m"},
    {"feet", L_UNIT, "ft"}, {"foot", L_UNIT, "ft"}, {"ft", L_UNIT, "ft"},
    {"inches", L_UNIT, "in"}, {"inch", L_UNIT, "in"}, {"cm", L_UNIT, "cm"},
    {"mm", L_UNIT, "mm"}, {"yards", L_UNIT, "yd"}, {"kg", L_UNIT, "kg"},
    {"kilograms", L_UNIT, "kg"}, {"kilogram", L_UNIT, "kg"},
    {"pounds", L_UNIT, "lb"}, {"pound", L_UNIT, "lb"}, {"lbs", L_UNIT, "lb"},
    {"lb", L_UNIT, "lb"}, {"grams", L_UNIT, "g"}, {"ounces", L_UNIT, "oz"},
    {"oz", L_UNIT, "oz"}, {"liters", L_UNIT, "l"}, {"litres", L_UNIT, "l"},
    {"gallons", L_UNIT, "gal"}, {"mph", L_UNIT, "mph"},
    {"kmh", L_UNIT, "kmh"}, {"usd", L_UNIT, "usd"},
    {"dollars", L_UNIT, "usd"}, {"eur", L_UNIT, "eur"},
    {"euros", L_UNIT, "eur"}, {"euro", L_UNIT, "eur"},
    {"gbp", L_UNIT, "gbp"}, {"cny", L_UNIT, "cny"}, {"rmb", L_UNIT, "cny"},
    {"yuan", L_UNIT, "cny"}, {"jpy", L_UNIT, "jpy"}, {"yen", L_UNIT, "jpy"},
    {"binary", L_UNIT, "binary"}, {"decimal", L_UNIT, "decimal"},
    {"hex", L_UNIT, "hex"}, {"hexadecimal", L_UNIT, "hex"},
    {"octal", L_UNIT, "octal"}, {"base64", L_UNIT, "base64"},
    {"ascii", L_UNIT, "ascii"}, {"unicode", L_UNIT, "unicode"},
    {"utf8", L_UNIT, "utf8"}, {"string", L_UNIT, "string"},
    {"strings", L_UNIT, "string"}, {"int", L_UNIT, "int"},
    {"integer", L_UNIT, "int"}, {"integers", L_UNIT, "int"},
    {"float", L_UNIT, "float"}, {"double", L_UNIT, "float"},
    {"array", L_UNIT, "array"}, {"dict", L_UNIT, "dict"},
    {"dictionary", L_UNIT, "dict"}, {"tuple", L_UNIT, "tuple"},
    {"uppercase", L_UNIT, "upper"}, {"lowercase", L_UNIT, "lower"},
    {"utc", L_UNIT, "utc"}, {"pst", L_UNIT, "pst"}, {"est", L_UNIT, "est"},
    {"cst", L_UNIT, "cst"}, {"gmt", L_UNIT, "gmt"}, {"bst", L_UNIT, "bst"}
};

/* Programming keywords: naming one asks a different question than naming
 * another ("reverse a string" is not "reverse an array"). Everyday words
 * ("list", "for", "if", "set", "map", "break") are left out: they are too
 * often plain English. */
static const char *const keywords[] = {
    "def", "lambda", "yield", "async", "await", "struct", "typedef", "enum",
    "void", "const", "static", "public", "private", "protected", "virtual",
    "namespace", "template", "typename", "nullptr", "null", "nil", "self",
    "malloc", "calloc", "realloc", "printf", "println", "fn", "impl", "trait",
    "mut", "var", "func", "interface", "extends", "implements", "import",
    "return", "goto", "sizeof", "volatile", "extern", "inline", "unsigned",
    "signed", "int", "bool", "boolean", "char", "float", "string", "str",
    "dict", "tuple", "hashmap", "vector", "array", "slice", "class", "finally",
    "throw", "raise", "assert", "elif", "foreach", "iterator", "generator",
    "decorator", "closure", "pointer", "regex", "mutex", "goroutine",
    "promise", "callback", "recursion", "loop", "union", "switch",
    "constructor", "destructor", "getter", "setter", "stdin", "stdout",
    "stderr", "argv", "argc"
};

/* Places, one word (any case). Several are also words ("turkey",
 * "china"): counting them on both sides keeps that harmless. */
static const char *const places[] = {
    "afghanistan", "africa", "albania", "algeria", "america", "americas",
    "amsterdam", "antarctica", "argentina", "armenia", "asia", "athens",
    "auckland", "australia", "austria", "azerbaijan", "bahrain",
    "bangkok", "bangladesh", "barcelona", "beijing", "belarus", "belgium",
    "belgrade", "berlin", "bogota", "bolivia", "bosnia", "boston",
    "brazil", "britain", "brussels", "bucharest", "budapest", "bulgaria",
    "cairo", "cambodia", "cameroon", "canada", "caracas", "chengdu",
    "chicago", "chile", "china", "colombia", "copenhagen", "croatia",
    "cuba", "cyprus", "czechia", "delhi", "denmark", "dubai", "dublin",
    "ecuador", "egypt", "england", "estonia", "ethiopia", "europe",
    "finland", "france", "geneva", "georgia", "germany", "ghana", "greece",
    "guangzhou", "guatemala", "haiti", "hamburg", "hangzhou", "hanoi",
    "havana", "helsinki", "holland", "honduras", "houston", "hungary",
    "iceland", "india", "indonesia", "iran", "iraq", "ireland", "israel",
    "istanbul", "italy", "jakarta", "jamaica", "japan", "jordan",
    "kazakhstan", "kenya", "kiev", "korea", "kuwait", "kyiv", "kyoto",
    "lagos", "laos", "latvia", "lebanon", "libya", "lima", "lisbon",
    "lithuania", "london", "luxembourg", "madagascar", "madrid", "malaysia",
    "mali", "malta", "manila", "melbourne", "mexico", "milan", "minsk",
    "moldova", "monaco", "mongolia", "montenegro", "montreal", "morocco",
    "moscow", "mozambique", "mumbai", "munich", "myanmar", "nairobi",
    "nanjing", "nepal", "netherlands", "nigeria", "norway", "oman", "osaka",
    "oslo", "pakistan", "panama", "paraguay", "paris", "peru",
    "philippines", "poland", "portugal", "prague", "qatar", "riga", "rome",
    "romania", "russia", "rwanda", "santiago", "scotland", "seattle",
    "senegal", "seoul", "serbia", "shanghai", "shenzhen", "singapore",
    "slovakia", "slovenia", "sofia", "somalia", "spain", "stockholm",
    "sudan", "sweden", "switzerland", "sydney", "syria", "taipei",
    "taiwan", "tallinn", "tanzania", "thailand", "tianjin", "tokyo",
    "toronto", "tunisia", "turkey", "uganda", "uk", "ukraine", "uruguay",
    "usa", "uzbekistan", "vancouver", "venezuela", "vienna", "vietnam",
    "vilnius", "wales", "warsaw", "wuhan", "yemen", "zagreb", "zambia",
    "zimbabwe", "zurich", "california", "texas", "florida", "alaska",
    "hawaii", "ontario", "quebec", "bavaria", "tibet", "mars", "jupiter",
    "venus", "saturn", "mercury", "neptune", "uranus", "pluto"
};

/* Places of several words, lower case, one space between words. */
static const char *const place_phrases[] = {
    "united states", "united kingdom", "united arab emirates",
    "south korea", "north korea", "south africa", "new zealand",
    "saudi arabia", "sri lanka", "costa rica", "czech republic",
    "dominican republic", "hong kong", "new york", "los angeles",
    "san francisco", "rio de janeiro", "buenos aires", "mexico city",
    "new delhi", "cape town", "tel aviv", "kuala lumpur", "las vegas",
    "san diego", "north america", "south america", "new jersey",
    "washington dc", "ho chi minh"
};

/* CJK words: languages, formats, units, places, connectors. */
static const lex_t cjk_words[] = {
    {"中文", L_LANG, "zh"}, {"汉语", L_LANG, "zh"}, {"普通话", L_LANG, "zh"},
    {"简体中文", L_LANG, "zh"}, {"繁体中文", L_LANG, "zh-hant"},
    {"繁体", L_LANG, "zh-hant"}, {"简体", L_LANG, "zh"},
    {"粤语", L_LANG, "yue"},
    {"英文", L_LANG, "en"}, {"英语", L_LANG, "en"}, {"法语", L_LANG, "fr"},
    {"法文", L_LANG, "fr"}, {"德语", L_LANG, "de"}, {"德文", L_LANG, "de"},
    {"日语", L_LANG, "ja"}, {"日文", L_LANG, "ja"}, {"韩语", L_LANG, "ko"},
    {"韩文", L_LANG, "ko"}, {"俄语", L_LANG, "ru"}, {"俄文", L_LANG, "ru"},
    {"西班牙语", L_LANG, "es"}, {"西班牙文", L_LANG, "es"},
    {"意大利语", L_LANG, "it"}, {"葡萄牙语", L_LANG, "pt"},
    {"阿拉伯语", L_LANG, "ar"}, {"越南语", L_LANG, "vi"},
    {"泰语", L_LANG, "th"},
    {"表格", L_FORMAT, "table"}, {"列表", L_FORMAT, "bullets"},
    {"清单", L_FORMAT, "bullets"}, {"要点", L_FORMAT, "bullets"},
    {"一句话", L_FORMAT, "sentence"}, {"一段话", L_FORMAT, "paragraph"},
    {"绝句", L_FORMAT, "jueju"}, {"律诗", L_FORMAT, "lushi"},
    {"文言文", L_FORMAT, "classical"}, {"白话文", L_FORMAT, "vernacular"},
    {"摄氏度", L_UNIT, "celsius"}, {"摄氏", L_UNIT, "celsius"},
    {"华氏度", L_UNIT, "fahrenheit"}, {"华氏", L_UNIT, "fahrenheit"},
    {"开尔文", L_UNIT, "kelvin"}, {"公里", L_UNIT, "km"},
    {"千米", L_UNIT, "km"}, {"英里", L_UNIT, "mile"}, {"公斤", L_UNIT, "kg"},
    {"千克", L_UNIT, "kg"}, {"磅", L_UNIT, "lb"},
    {"英尺", L_UNIT, "ft"}, {"英寸", L_UNIT, "in"},
    {"厘米", L_UNIT, "cm"}, {"毫米", L_UNIT, "mm"}, {"美元", L_UNIT, "usd"},
    {"美金", L_UNIT, "usd"}, {"人民币", L_UNIT, "cny"},
    {"欧元", L_UNIT, "eur"}, {"日元", L_UNIT, "jpy"}, {"英镑", L_UNIT, "gbp"},
    {"港币", L_UNIT, "hkd"}, {"二进制", L_UNIT, "binary"},
    {"十进制", L_UNIT, "decimal"}, {"十六进制", L_UNIT, "hex"},
    {"八进制", L_UNIT, "octal"}, {"字符串", L_UNIT, "string"},
    {"整数", L_UNIT, "int"}, {"浮点数", L_UNIT, "float"},
    {"数组", L_UNIT, "array"}, {"字典", L_UNIT, "dict"},
    {"大写", L_UNIT, "upper"}, {"小写", L_UNIT, "lower"},
    {"翻译成", L_CONN, NULL}, {"翻译为", L_CONN, NULL},
    {"翻成", L_CONN, NULL}, {"译成", L_CONN, NULL}, {"译为", L_CONN, NULL},
    {"转换成", L_CONN, NULL}, {"转换为", L_CONN, NULL},
    {"转换到", L_CONN, NULL}, {"转化为", L_CONN, NULL},
    {"转化成", L_CONN, NULL}, {"转成", L_CONN, NULL}, {"转为", L_CONN, NULL},
    {"转到", L_CONN, NULL}, {"换成", L_CONN, NULL},
    {"换到", L_CONN, NULL}, {"换算成", L_CONN, NULL},
    {"换算为", L_CONN, NULL}, {"变成", L_CONN, NULL}, {"改成", L_CONN, NULL},
    {"改写成", L_CONN, NULL}, {"到", L_CONN, NULL}, {"转", L_CONN, NULL},
    {"译", L_CONN, NULL}, {"等于", L_CONN, NULL}, {"比", L_CONN, NULL},
    {"比较", L_WORD, NULL}, {"比如", L_WORD, NULL}, {"比例", L_WORD, NULL},
    {"比赛", L_WORD, NULL}, {"对比", L_WORD, NULL}, {"到底", L_WORD, NULL},
    {"转发", L_WORD, NULL}, {"旋转", L_WORD, NULL}, {"好比", L_WORD, NULL},
    {"中国", L_PLACE, NULL}, {"美国", L_PLACE, NULL}, {"英国", L_PLACE, NULL},
    {"法国", L_PLACE, NULL}, {"德国", L_PLACE, NULL}, {"日本", L_PLACE, NULL},
    {"韩国", L_PLACE, NULL}, {"朝鲜", L_PLACE, NULL},
    {"俄罗斯", L_PLACE, NULL}, {"意大利", L_PLACE, NULL},
    {"西班牙", L_PLACE, NULL}, {"葡萄牙", L_PLACE, NULL},
    {"加拿大", L_PLACE, NULL}, {"澳大利亚", L_PLACE, NULL},
    {"新西兰", L_PLACE, NULL}, {"印度", L_PLACE, NULL},
    {"巴西", L_PLACE, NULL}, {"墨西哥", L_PLACE, NULL},
    {"阿根廷", L_PLACE, NULL}, {"埃及", L_PLACE, NULL},
    {"南非", L_PLACE, NULL}, {"土耳其", L_PLACE, NULL},
    {"伊朗", L_PLACE, NULL}, {"伊拉克", L_PLACE, NULL},
    {"以色列", L_PLACE, NULL}, {"沙特", L_PLACE, NULL},
    {"泰国", L_PLACE, NULL}, {"越南", L_PLACE, NULL},
    {"新加坡", L_PLACE, NULL}, {"马来西亚", L_PLACE, NULL},
    {"印度尼西亚", L_PLACE, NULL}, {"印尼", L_PLACE, NULL},
    {"菲律宾", L_PLACE, NULL}, {"荷兰", L_PLACE, NULL},
    {"比利时", L_PLACE, NULL}, {"瑞士", L_PLACE, NULL},
    {"瑞典", L_PLACE, NULL}, {"挪威", L_PLACE, NULL}, {"丹麦", L_PLACE, NULL},
    {"芬兰", L_PLACE, NULL}, {"波兰", L_PLACE, NULL},
    {"乌克兰", L_PLACE, NULL}, {"希腊", L_PLACE, NULL},
    {"奥地利", L_PLACE, NULL}, {"爱尔兰", L_PLACE, NULL},
    {"欧洲", L_PLACE, NULL}, {"亚洲", L_PLACE, NULL}, {"非洲", L_PLACE, NULL},
    {"美洲", L_PLACE, NULL}, {"北美", L_PLACE, NULL}, {"南美", L_PLACE, NULL},
    {"北京", L_PLACE, NULL}, {"上海", L_PLACE, NULL}, {"广州", L_PLACE, NULL},
    {"深圳", L_PLACE, NULL}, {"天津", L_PLACE, NULL}, {"重庆", L_PLACE, NULL},
    {"杭州", L_PLACE, NULL}, {"南京", L_PLACE, NULL}, {"苏州", L_PLACE, NULL},
    {"成都", L_PLACE, NULL}, {"武汉", L_PLACE, NULL}, {"西安", L_PLACE, NULL},
    {"长沙", L_PLACE, NULL}, {"郑州", L_PLACE, NULL}, {"青岛", L_PLACE, NULL},
    {"大连", L_PLACE, NULL}, {"厦门", L_PLACE, NULL}, {"沈阳", L_PLACE, NULL},
    {"哈尔滨", L_PLACE, NULL}, {"昆明", L_PLACE, NULL},
    {"香港", L_PLACE, NULL}, {"澳门", L_PLACE, NULL}, {"台湾", L_PLACE, NULL},
    {"台北", L_PLACE, NULL}, {"东京", L_PLACE, NULL}, {"大阪", L_PLACE, NULL},
    {"首尔", L_PLACE, NULL}, {"巴黎", L_PLACE, NULL}, {"伦敦", L_PLACE, NULL},
    {"柏林", L_PLACE, NULL}, {"纽约", L_PLACE, NULL},
    {"洛杉矶", L_PLACE, NULL}, {"旧金山", L_PLACE, NULL},
    {"华盛顿", L_PLACE, NULL}, {"莫斯科", L_PLACE, NULL},
    {"罗马", L_PLACE, NULL}, {"马德里", L_PLACE, NULL},
    {"悉尼", L_PLACE, NULL}, {"多伦多", L_PLACE, NULL},
    {"广东", L_PLACE, NULL}, {"浙江", L_PLACE, NULL}, {"江苏", L_PLACE, NULL},
    {"山东", L_PLACE, NULL}, {"河南", L_PLACE, NULL}, {"河北", L_PLACE, NULL},
    {"湖南", L_PLACE, NULL}, {"湖北", L_PLACE, NULL}, {"四川", L_PLACE, NULL},
    {"福建", L_PLACE, NULL}, {"安徽", L_PLACE, NULL}, {"江西", L_PLACE, NULL},
    {"山西", L_PLACE, NULL}, {"陕西", L_PLACE, NULL}, {"云南", L_PLACE, NULL},
    {"贵州", L_PLACE, NULL}, {"辽宁", L_PLACE, NULL}, {"吉林", L_PLACE, NULL},
    {"黑龙江", L_PLACE, NULL}, {"甘肃", L_PLACE, NULL},
    {"青海", L_PLACE, NULL}, {"海南", L_PLACE, NULL},
    {"内蒙古", L_PLACE, NULL}, {"新疆", L_PLACE, NULL},
    {"西藏", L_PLACE, NULL}, {"广西", L_PLACE, NULL}, {"宁夏", L_PLACE, NULL}
};

/* One-character language names of "X译Y" (中译英). */
static const lex_t cjk_lang_abbr[] = {
    {"中", L_LANG, "zh"}, {"英", L_LANG, "en"}, {"日", L_LANG, "ja"},
    {"法", L_LANG, "fr"}, {"德", L_LANG, "de"}, {"韩", L_LANG, "ko"},
    {"俄", L_LANG, "ru"}, {"西", L_LANG, "es"}
};

/* Words holding a Chinese negation character (不 没 无 非 别 未 勿, see
 * cn_is_neg) that negate nothing. */
static const char *const cn_not_neg[] = {
    "非常", "非洲", "特别", "区别", "分别", "别人", "别的", "级别", "类别",
    "性别", "识别", "告别", "个别", "差别", "鉴别", "辨别", "离别", "派别",
    "未来", "无论", "无线", "不过", "不仅", "不但", "不管", "不断", "无数",
    "并非"
};

/* After a lone 一, these make a word, not the number one: 一下, 一个 (the
 * article "a": 两个 is still 2), 一些, 一起, 一样, ... */
static const char *const cn_one_words_next[] = {
    "下", "个", "种", "份", "篇", "段", "条", "只", "本", "张", "件", "位",
    "句", "首", "些", "点", "样", "般", "起", "直", "定", "切", "致", "旦",
    "边", "向", "律", "概", "贯", "共", "会", "同", "旁", "番", "套", "则"
};

/* Before a lone 一: 统一, 唯一 are words. */
static const char *const cn_one_words_prev[] = {"统", "唯"};

/* Entity suffixes: X省, X市, X县 take two characters before (江苏省,
 * 杭州市), X国 and X州 one (泰国, 杭州, 加州). */
static const char *const cn_place_suffix2[] = {"省", "市", "县"};
static const char *const cn_place_suffix1[] = {"国", "州"};

/* Two-character words ending in a place suffix that are not places. */
static const char *const cn_not_place[] = {
    "城市", "都市", "超市", "上市", "股市", "门市", "夜市", "黑市", "全市",
    "本市", "该市", "各市", "全省", "本省", "该省", "各省", "外省", "节省",
    "反省", "全国", "各国", "外国", "本国", "出国", "回国", "祖国", "王国",
    "帝国", "万国", "两国", "该国", "我国", "他国", "异国", "爱国", "强国",
    "大国", "小国", "全州", "全县", "本县", "该县", "治国", "建国", "国国"
};

/* Characters that cannot be part of a place name before a suffix. */
static const char *const cn_not_name_chars[] = {
    "的", "在", "是", "了", "和", "与", "我", "你", "他", "她", "这", "那",
    "个", "从", "到", "把", "被", "给", "对", "向", "往", "去", "来", "哪",
    "些", "每", "各", "该", "本", "全", "其", "有", "于", "为", "问", "请",
    "帮", "说"
};

/* CJK characters a polite or chatty wrapper adds ("请帮我...一下吗"): not
 * content of a pasted document. */
static const char *const cn_filler_chars[] = {
    "请", "帮", "我", "你", "您", "的", "了", "吗", "呢", "吧", "啊", "呀",
    "么", "下", "问", "麻", "烦", "谢", "能", "可", "以", "个", "这", "那",
    "是", "在", "和", "就", "也", "都", "把", "给", "让", "嗯", "哦"
};

/* CJK characters of questions a connector looks past: 农历怎么换算成公历,
 * 100华氏度等于多少摄氏度. */
static const char *const cn_dir_filler_chars[] = {
    "怎", "么", "如", "何", "将", "从", "该", "应", "要", "多", "少", "几",
    "样", "上", "里", "中"
};

/* ---- the index of the word lists ----------------------------------------- */

typedef struct {
    const char *w;        /* NULL: empty slot */
    size_t wlen;
    unsigned cls;
    const char *lang;     /* canon per class, when the class is set */
    const char *format;
    const char *unit;
    const char *num;
} lexent_t;

static lexent_t lex_tab[LEX_SLOTS];
static size_t cjk_order[sizeof(cjk_words) / sizeof(cjk_words[0])];
static uint32_t cjk_first[sizeof(cjk_words) / sizeof(cjk_words[0])];
static size_t cjk_len[sizeof(cjk_words) / sizeof(cjk_words[0])];
static pthread_once_t lex_once = PTHREAD_ONCE_INIT;

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    }
    return h;
}

static lexent_t *lex_slot(const char *w, size_t n)
{
    size_t i = (size_t)fnv(w, n) & (LEX_SLOTS - 1);

    while (lex_tab[i].w != NULL
           && !(lex_tab[i].wlen == n && memcmp(lex_tab[i].w, w, n) == 0)) {
        i = (i + 1) & (LEX_SLOTS - 1);
    }
    return &lex_tab[i];
}

static void lex_put(const char *w, unsigned cls, const char *canon)
{
    lexent_t *e = lex_slot(w, strlen(w));

    e->w = w;
    e->wlen = strlen(w);
    e->cls |= cls;
    if (cls & L_LANG) {
        e->lang = canon;
    }
    if (cls & L_FORMAT) {
        e->format = canon;
    }
    if (cls & L_UNIT) {
        e->unit = canon;
    }
    if (cls & (L_NUM | L_SCALE)) {
        e->num = canon;
    }
}

static const lexent_t *lex_get(const char *w, size_t n)
{
    const lexent_t *e = lex_slot(w, n);

    return e->w != NULL ? e : NULL;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* By first character, then longest first. */
static int cjk_order_cmp(const void *a, const void *b)
{
    const char *x = cjk_words[*(const size_t *)a].w;
    const char *y = cjk_words[*(const size_t *)b].w;
    size_t lx = strlen(x), ly = strlen(y);
    uint32_t cx = 0, cy = 0;

    cs_utf8_decode((const unsigned char *)x, lx, &cx);
    cs_utf8_decode((const unsigned char *)y, ly, &cy);
    if (cx != cy) {
        return cx < cy ? -1 : 1;
    }
    return lx < ly ? 1 : lx > ly ? -1 : 0;
}

static void lex_build(void)
{
    size_t i;

    for (i = 0; i < COUNT(common_words); i++) {
        lex_put(common_words[i], L_COMMON, NULL);
    }
    for (i = 0; i < COUNT(neg_words); i++) {
        lex_put(neg_words[i], L_NEG, NULL);
    }
    for (i = 0; i < COUNT(number_words); i++) {
        lex_put(number_words[i].w, number_words[i].cls,
                number_words[i].canon);
    }
    for (i = 0; i < COUNT(lang_words); i++) {
        lex_put(lang_words[i].w, lang_words[i].cls, lang_words[i].canon);
    }
    for (i = 0; i < COUNT(format_words); i++) {
        lex_put(format_words[i].w, format_words[i].cls,
                format_words[i].canon);
    }
    for (i = 0; i < COUNT(unit_words); i++) {
        lex_put(unit_words[i].w, unit_words[i].cls, unit_words[i].canon);
    }
    for (i = 0; i < COUNT(keywords); i++) {
        lex_put(keywords[i], L_KEYWORD, NULL);
    }
    for (i = 0; i < COUNT(places); i++) {
        lex_put(places[i], L_PLACE, NULL);
    }
    for (i = 0; i < COUNT(place_phrases); i++) {
        lexent_t *e = lex_slot(place_phrases[i],
                               strcspn(place_phrases[i], " "));
        if (e->w == NULL) {
            e->w = place_phrases[i];        /* the first word, up to " " */
            e->wlen = strcspn(place_phrases[i], " ");
        }
        e->cls |= L_PHRASE;
    }
    lex_put("to", L_CONN, NULL);
    lex_put("into", L_CONN, NULL);
    lex_put("than", L_CONN, NULL);
    for (i = 0; i < COUNT(cjk_order); i++) {
        cjk_order[i] = i;
    }
    qsort(cjk_order, COUNT(cjk_order), sizeof(cjk_order[0]), cjk_order_cmp);
    for (i = 0; i < COUNT(cjk_order); i++) {
        const char *w = cjk_words[cjk_order[i]].w;
        cjk_len[i] = strlen(w);
        cs_utf8_decode((const unsigned char *)w, cjk_len[i], &cjk_first[i]);
    }
}

/* The longest CJK word at s (n bytes) with one of the classes in cls. */
static const lex_t *cjk_match(const char *s, size_t n, unsigned cls)
{
    size_t lo = 0, hi = COUNT(cjk_order);
    uint32_t cp;

    if (n == 0 || cs_utf8_decode((const unsigned char *)s, n, &cp) == 0) {
        return NULL;
    }
    /* the first entry whose first character is >= cp */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cjk_first[mid] < cp) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    for (; lo < COUNT(cjk_order) && cjk_first[lo] == cp; lo++) {
        const lex_t *e = &cjk_words[cjk_order[lo]];
        if ((e->cls & cls) && cjk_len[lo] <= n
            && memcmp(e->w, s, cjk_len[lo]) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Whether s (n bytes available) starts with one of the strings of list. */
static size_t starts_with_any(const char *s, size_t n,
                              const char *const *list, size_t count)
{
    size_t i;

    for (i = 0; i < count; i++) {
        size_t len = strlen(list[i]);
        if (len <= n && memcmp(s, list[i], len) == 0) {
            return len;
        }
    }
    return 0;
}

/* ---- bags of strings ---------------------------------------------------- */

typedef struct {
    char *s;
    size_t len;
    size_t pos;           /* where in the text, for ordered bags */
} item_t;

typedef struct {
    item_t *v;
    size_t n;
    size_t cap;
} bag_t;

static void bag_add_at(bag_t *b, const char *s, size_t len, size_t pos)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->v = cs_realloc(b->v, b->cap * sizeof(*b->v));
    }
    b->v[b->n].s = cs_strndup(s, len);
    b->v[b->n].len = len;
    b->v[b->n].pos = pos;
    b->n++;
}

static void bag_add(bag_t *b, const char *s, size_t len)
{
    bag_add_at(b, s, len, 0);
}

/* Adds prefix (one byte, the kind of candidate) followed by s. */
static void bag_add2(bag_t *b, char prefix, const char *s, size_t len)
{
    char *t = cs_malloc(len + 1);

    t[0] = prefix;
    memcpy(t + 1, s, len);
    bag_add(b, t, len + 1);
    cs_free(t);
}

static void bag_free(bag_t *b)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        cs_free(b->v[i].s);
    }
    cs_free(b->v);
    memset(b, 0, sizeof(*b));
}

static int item_cmp(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);

    if (c != 0) {
        return c;
    }
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Sorts b; with unique, also drops repeats (a set). */
static void bag_sort(bag_t *b, int unique)
{
    size_t i, k = 0;

    if (b->n > 1) {
        qsort(b->v, b->n, sizeof(*b->v), item_cmp);
    }
    if (!unique) {
        return;
    }
    for (i = 0; i < b->n; i++) {
        if (k > 0 && item_cmp(&b->v[k - 1], &b->v[i]) == 0) {
            cs_free(b->v[i].s);
            continue;
        }
        b->v[k++] = b->v[i];
    }
    b->n = k;
}

static int item_pos_cmp(const void *a, const void *b)
{
    const item_t *x = a, *y = b;

    if (x->pos != y->pos) {
        return x->pos < y->pos ? -1 : 1;
    }
    return item_cmp(a, b);
}

/* Equal sequences once each bag is put in text order. */
static int bag_equal_ordered(bag_t *a, bag_t *b)
{
    size_t i;

    if (a->n != b->n) {
        return 0;
    }
    if (a->n > 1) {
        qsort(a->v, a->n, sizeof(*a->v), item_pos_cmp);
        qsort(b->v, b->n, sizeof(*b->v), item_pos_cmp);
    }
    for (i = 0; i < a->n; i++) {
        if (a->v[i].len != b->v[i].len
            || memcmp(a->v[i].s, b->v[i].s, a->v[i].len) != 0) {
            return 0;
        }
    }
    return 1;
}

static int bag_equal(bag_t *a, bag_t *b, int as_sets)
{
    size_t i;

    bag_sort(a, as_sets);
    bag_sort(b, as_sets);
    if (a->n != b->n) {
        return 0;
    }
    for (i = 0; i < a->n; i++) {
        if (item_cmp(&a->v[i], &b->v[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* ---- one text ----------------------------------------------------------- */

enum {
    TK_WORD,
    TK_CJK,       /* a run of CJK characters */
    TK_SYM        /* one symbol character */
};

enum {
    TF_CAP = 1 << 0,      /* first letter is a capital */
    TF_UPPER = 1 << 1,    /* two or more letters, all capitals */
    TF_CAMEL = 1 << 2,    /* a capital right after a small letter */
    TF_CALL = 1 << 3,     /* "(" follows */
    TF_SNAKE = 1 << 4,    /* holds "_" and something else */
    TF_DOT = 1 << 5,      /* an inner "." between letters */
    TF_SENT = 1 << 6,     /* first word of a sentence */
    TF_CODE = 1 << 7,     /* inside an inline code span */
    TF_NT = 1 << 8,       /* ends in n't */
    TF_DIGIT = 1 << 9     /* starts with a digit */
};

typedef struct {
    size_t off;           /* bytes in the side's text */
    size_t len;
    size_t foff;          /* folded form in the side's fold buffer */
    size_t flen;
    size_t blen;          /* folded length before any apostrophe */
    unsigned flags;
    int kind;
    const lexent_t *lex;  /* entry of the folded base, or NULL */
} tok_t;

enum {
    S_NONE, S_LATIN, S_CYRILLIC, S_GREEK, S_ARABIC, S_HANGUL, S_ZH, S_JA,
    S_OTHER, S_COUNT
};

typedef struct {
    cs_buf_t text;        /* normalised, case kept */
    cs_buf_t fold;        /* folded words, back to back */
    cs_buf_t tmp;
    tok_t *t;
    size_t nt;
    size_t tcap;
    int sentence;         /* the next word starts a sentence */
    int in_code;          /* tokenising an inline span */
    bag_t numbers, blocks, names, idents, langs, formats, pairs;
    bag_t ops;            /* operator runs: "*", "**", "<=", "-" */
    bag_t order;          /* languages, formats, units, CJK words, with
                           * their places; numbers and names join them
                           * in compare() */
    uint64_t *content;    /* hashes of the content tokens */
    size_t ncontent;
    size_t ccap;
    int negations;
    int shouting;         /* mostly capitals: capitals mean nothing */
    int cjk_text;         /* written in CJK: every Latin word in it is a
                           * name, a term or code */
    unsigned script_words[S_COUNT];
} side_t;

static const char *tok_text(const side_t *sd, const tok_t *t)
{
    return sd->text.data + t->off;
}

static const char *tok_fold(const side_t *sd, const tok_t *t)
{
    return sd->fold.data + t->foff;
}

static int is_word_cp(uint32_t cp)
{
    return cp == '_' || (cs_uc_is_word(cp) && !cs_uc_is_cjk(cp));
}

static int ascii_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}

static int ascii_lower(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

static int script_of(uint32_t cp)
{
    if (cp < 0x80) {
        return ascii_upper((unsigned char)cp) || ascii_lower((unsigned char)cp)
               ? S_LATIN : S_NONE;
    }
    if ((cp >= 0xC0 && cp <= 0x24F) || (cp >= 0x1E00 && cp <= 0x1EFF)) {
        return S_LATIN;
    }
    if (cp >= 0x370 && cp <= 0x3FF) {
        return S_GREEK;
    }
    if (cp >= 0x400 && cp <= 0x52F) {
        return S_CYRILLIC;
    }
    if (cp >= 0x600 && cp <= 0x6FF) {
        return S_ARABIC;
    }
    if ((cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0x1100 && cp <= 0x11FF)) {
        return S_HANGUL;
    }
    return S_OTHER;
}

/* Appends the folded form of s (n bytes) to sd->fold. */
static void fold_append(side_t *sd, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n && (unsigned char)s[i] < 0x80; i++) {
    }
    if (i == n) {
        size_t start = sd->fold.len;
        cs_buf_append(&sd->fold, s, n);
        for (i = start; i < sd->fold.len; i++) {
            if (ascii_upper((unsigned char)sd->fold.data[i])) {
                sd->fold.data[i] += 32;
            }
        }
        return;
    }
    cs_normalize_opts(s, n, CS_NORM_PLAIN, &sd->tmp);
    cs_buf_append(&sd->fold, sd->tmp.data ? sd->tmp.data : "", sd->tmp.len);
}

/* Whether the code point cp (its UTF-8 at s, k bytes) is a capital. */
static int cp_is_capital(side_t *sd, const char *s, size_t k, uint32_t cp)
{
    if (cp < 0x80) {
        return ascii_upper((unsigned char)cp);
    }
    cs_normalize_opts(s, k, CS_NORM_PLAIN, &sd->tmp);
    return sd->tmp.len > 0 && sd->tmp.len <= k
           && memcmp(sd->tmp.data, s, sd->tmp.len) != 0;
}

static tok_t *tok_push(side_t *sd, int kind, size_t off, size_t len)
{
    tok_t *t;

    if (sd->nt == sd->tcap) {
        sd->tcap = sd->tcap ? sd->tcap * 2 : 64;
        sd->t = cs_realloc(sd->t, sd->tcap * sizeof(*sd->t));
    }
    t = &sd->t[sd->nt++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->off = off;
    t->len = len;
    return t;
}

/* Reads one word starting at i (< end); returns its end. */
static size_t read_word(side_t *sd, size_t i, size_t end)
{
    const unsigned char *s = (const unsigned char *)sd->text.data;
    size_t start = i, k, j, a;
    unsigned flags = 0, uppers = 0, lowers = 0;
    uint32_t cp, first = 0;
    int prev_lower = 0, long_part = 0;
    size_t part = i;                /* start of the part after a "." */
    tok_t *t;

    k = cs_utf8_decode(s + i, end - i, &first);
    if (cp_is_capital(sd, (const char *)s + i, k, first)) {
        flags |= TF_CAP;
    }
    if (first >= '0' && first <= '9') {
        flags |= TF_DIGIT;
    }
    sd->script_words[script_of(first)]++;
    while (i < end) {
        k = cs_utf8_decode(s + i, end - i, &cp);
        if (k == 0) {
            break;
        }
        if (!is_word_cp(cp)) {
            /* inner ".", "'", "’" between word characters */
            uint32_t next;
            size_t k2;
            if ((cp == '.' || cp == '\'' || cp == 0x2019) && i + k < end
                && (k2 = cs_utf8_decode(s + i + k, end - i - k, &next)) != 0
                && is_word_cp(next) && next != '_') {
                if (cp == '.') {
                    flags |= TF_DOT;
                    long_part |= i - part > 1;
                    part = i + k;
                }
                prev_lower = 0;
                i += k;
                continue;
            }
            break;
        }
        if (cp == '_') {
            flags |= TF_SNAKE;
        }
        else if (cp < 0x80 && ascii_upper((unsigned char)cp)) {
            uppers++;
            if (prev_lower && !(flags & TF_CAP)) {
                flags |= TF_CAMEL;      /* getName, not GitHub */
            }
        }
        else if (cp < 0x80 && ascii_lower((unsigned char)cp)) {
            lowers++;
        }
        prev_lower = cp < 0x80 && ascii_lower((unsigned char)cp);
        i += k;
    }
    /* c++, c#, f# */
    if (i - start == 1 && (s[start] | 0x20) == 'c' && i + 1 < end
        && s[i] == '+' && s[i + 1] == '+') {
        i += 2;
    }
    else if (i - start == 1 && ((s[start] | 0x20) == 'c'
                                || (s[start] | 0x20) == 'f')
             && i < end && s[i] == '#') {
        i++;
    }
    if (i < end && s[i] == '(') {
        flags |= TF_CALL;
    }
    if (uppers >= 2 && lowers == 0) {
        flags |= TF_UPPER;
    }
    if ((flags & TF_SNAKE)) {
        for (j = start; j < i && s[j] == '_'; j++) {
        }
        if (j == i) {
            flags &= ~(unsigned)TF_SNAKE;     /* only underscores */
        }
    }
    if ((flags & TF_DIGIT) || !(long_part || i - part > 1)) {
        flags &= ~(unsigned)TF_DOT;     /* 3.14 is a number, e.g. a word */
    }
    if (sd->sentence) {
        flags |= TF_SENT;
        sd->sentence = 0;
    }
    if (sd->in_code) {
        flags |= TF_CODE;
    }
    t = tok_push(sd, TK_WORD, start, i - start);
    t->flags = flags;
    t->foff = sd->fold.len;
    fold_append(sd, (const char *)s + start, i - start);
    t->flen = sd->fold.len - t->foff;
    t->blen = t->flen;
    for (a = 0; a < t->flen; a++) {
        const char *f = sd->fold.data + t->foff + a;
        if (f[0] == '\'' || (a + 2 < t->flen && memcmp(f, "\xE2\x80\x99", 3)
                             == 0)) {
            t->blen = a;
            break;
        }
    }
    if (t->flen >= 3) {
        const char *f = sd->fold.data + t->foff + t->flen;
        if (memcmp(f - 3, "n't", 3) == 0
            || (t->flen >= 5 && memcmp(f - 5, "n\xE2\x80\x99t", 5) == 0)) {
            t->flags |= TF_NT;
        }
    }
    t->lex = lex_get(sd->fold.data + t->foff, t->blen);
    return i;
}

/* Tokenises a piece of prose (or the inside of a code span). */
static void tokenize(side_t *sd, size_t off, size_t len)
{
    const unsigned char *s = (const unsigned char *)sd->text.data;
    size_t i = off, end = off + len;

    while (i < end) {
        uint32_t cp;
        size_t k = cs_utf8_decode(s + i, end - i, &cp), start = i;

        if (k == 0) {
            tok_push(sd, TK_SYM, i, 1);
            i++;
            continue;
        }
        if (cs_uc_is_space(cp)) {
            i += k;
            continue;
        }
        if (cs_uc_is_cjk(cp)) {
            unsigned kana = 0, chars = 0;
            while (i < end && (k = cs_utf8_decode(s + i, end - i, &cp)) != 0
                   && cs_uc_is_cjk(cp)) {
                chars++;
                kana += cp >= 0x3040 && cp <= 0x30FF;
                i += k;
            }
            tok_push(sd, TK_CJK, start, i - start);
            sd->script_words[kana ? S_JA : S_ZH] +=
                (chars + SCRIPT_CJK_CHARS_PER_WORD - 1)
                / SCRIPT_CJK_CHARS_PER_WORD;
            sd->sentence = 0;
            continue;
        }
        if (is_word_cp(cp)) {
            i = read_word(sd, i, end);
            continue;
        }
        tok_push(sd, TK_SYM, i, k);
        if (cp == '.' || cp == '!' || cp == '?' || cp == ':' || cp == ';'
            || cp == 0x3002 || cp == 0x2026) {
            sd->sentence = 1;
        }
        i += k;
    }
}

/* ---- numbers ------------------------------------------------------------ */

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Value of the Chinese numeral character at s (n bytes): 0..9, or
 * 10/100/1000/10^4/10^8 for a unit; -1 for any other character. *k
 * receives its length. */
static long cn_numeral(const char *s, size_t n, size_t *k)
{
    uint32_t cp;

    *k = n > 0 ? cs_utf8_decode((const unsigned char *)s, n, &cp) : 0;
    if (*k == 0) {
        return -1;
    }
    switch (cp) {
    case 0x96F6: /* 零 */
    case 0x3007: /* 〇 */
        return 0;
    case 0x4E00: /* 一 */
        return 1;
    case 0x4E8C: /* 二 */
    case 0x4E24: /* 两 */
        return 2;
    case 0x4E09: /* 三 */
        return 3;
    case 0x56DB: /* 四 */
        return 4;
    case 0x4E94: /* 五 */
        return 5;
    case 0x516D: /* 六 */
        return 6;
    case 0x4E03: /* 七 */
        return 7;
    case 0x516B: /* 八 */
        return 8;
    case 0x4E5D: /* 九 */
        return 9;
    case 0x5341: /* 十 */
        return 10;
    case 0x767E: /* 百 */
        return 100;
    case 0x5343: /* 千 */
        return 1000;
    case 0x4E07: /* 万 */
        return 10000;
    case 0x4EBF: /* 亿 */
        return 100000000;
    default:
        return -1;
    }
}

/* Adds a number: sign, integer part without leading zeros, decimals as
 * written, percent sign. */
static void add_number(side_t *sd, size_t pos, int neg, const char *ip,
                       size_t il, const char *fp, size_t fl, int pct)
{
    cs_buf_t *b = &sd->tmp;

    while (il > 1 && ip[0] == '0') {
        ip++;
        il--;
    }
    cs_buf_reset(b);
    if (neg) {
        cs_buf_append(b, "-", 1);
    }
    cs_buf_append(b, ip, il);
    if (fl > 0) {
        cs_buf_append(b, ".", 1);
        cs_buf_append(b, fp, fl);
    }
    if (pct) {
        cs_buf_append(b, "%", 1);
    }
    bag_add_at(&sd->numbers, b->data, b->len, pos);
}

static void add_number_value(side_t *sd, size_t pos, unsigned long long v,
                             int pct)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", v);
    add_number(sd, pos, 0, buf, strlen(buf), NULL, 0, pct);
}

static int preceded_by(const char *s, size_t start, size_t off,
                       const char *what)
{
    size_t n = strlen(what);

    return start >= off + n && memcmp(s + start - n, what, n) == 0;
}

/* An ASCII number at i; returns where it ends. */
static size_t scan_ascii_number(side_t *sd, size_t off, size_t end,
                                size_t i)
{
    const char *s = sd->text.data;
    const unsigned char *u = (const unsigned char *)s;
    size_t start = i, j, il, fstart = 0, fl = 0, k;
    char ibuf[NUM_MAX_DIGITS + 1];
    int neg = 0, pct = 0;
    unsigned long long mult = 0;
    long v;

    /* a minus sign, not a hyphen or a subtraction */
    if (i > off && s[i - 1] == '-'
        && (i - 1 == off || !(is_digit(u[i - 2]) || ascii_lower(u[i - 2])
                              || ascii_upper(u[i - 2]) || u[i - 2] == '_'
                              || u[i - 2] == ')'))) {
        neg = 1;
    }
    for (j = i; j < end && is_digit(u[j]); j++) {
    }
    if (j - i > NUM_MAX_DIGITS) {
        bag_add_at(&sd->numbers, s + i, j - i, i);  /* compared as written */
        return j;
    }
    il = j - i;
    memcpy(ibuf, s + i, il);
    /* thousands separators: 1,234,567 (first group of 1 to 3 digits) */
    if (j - start <= 3) {
        while (j + 3 < end && s[j] == ',' && is_digit(u[j + 1])
               && is_digit(u[j + 2]) && is_digit(u[j + 3])
               && (j + 4 >= end || !is_digit(u[j + 4]))) {
            if (il + 3 > NUM_MAX_DIGITS) {
                break;
            }
            memcpy(ibuf + il, s + j + 1, 3);
            il += 3;
            j += 4;
        }
    }
    if (j + 1 < end && s[j] == '.' && is_digit(u[j + 1])) {
        fstart = j + 1;
        for (j = fstart; j < end && is_digit(u[j]); j++) {
        }
        fl = j - fstart;
    }
    if (j < end && s[j] == '%') {
        pct = 1;
        j++;
    }
    else if ((j + 8 <= end && strncasecmp(s + j, " percent", 8) == 0)
             || (j + 9 <= end && strncasecmp(s + j, " per cent", 9) == 0)) {
        pct = 1;
    }
    else if ((v = cn_numeral(s + j, end - j, &k)) >= 10000
             || v == 1000) {
        mult = (unsigned long long)v;   /* 3万, 1.5亿, 5千 */
        j += k;
    }
    if (preceded_by(s, start, off, "百分之")) {
        pct = 1;
    }
    if (mult != 0) {
        /* a scaled number: compared by value */
        char buf[NUM_MAX_DIGITS + 32];
        double d;
        snprintf(buf, sizeof(buf), "%.*s.%.*s", (int)il, ibuf,
                 (int)(fl < 16 ? fl : 16), s + fstart);
        d = strtod(buf, NULL) * (double)mult * (neg ? -1.0 : 1.0);
        if (d >= 0 && d < 1e18 && d == (double)(unsigned long long)d) {
            add_number_value(sd, start, (unsigned long long)d, pct);
        }
        else {
            snprintf(buf, sizeof(buf), "%.10g", d);
            bag_add_at(&sd->numbers, buf, strlen(buf), start);
        }
        return j;
    }
    add_number(sd, start, neg, ibuf, il, s + fstart, fl, pct);
    return j;
}

/* A run of Chinese numerals at i; returns where it ends. */
static size_t scan_cn_number(side_t *sd, size_t off, size_t end, size_t i)
{
    const char *s = sd->text.data;
    size_t start = i, k, nchars = 0, next_len;
    unsigned long long total = 0, section = 0, number = 0;
    int has_unit = 0, overflow = 0, pct;
    char digits[CN_NUM_MAX_RUN + 1];
    long v;

    while (i < end && (v = cn_numeral(s + i, end - i, &k)) >= 0) {
        if (nchars < CN_NUM_MAX_RUN) {
            digits[nchars] = v < 10 ? (char)('0' + v) : '?';
        }
        nchars++;
        if (v < 10) {
            number = (unsigned long long)v;
        }
        else if (total > CN_NUM_MAX_VALUE / 100000000ull
                 || section > CN_NUM_MAX_VALUE / 100000000ull) {
            overflow = 1;
        }
        else if (v < 10000) {
            has_unit = 1;
            if (number == 0 && v == 10) {
                number = 1;                 /* 十五 is 15 */
            }
            section += number * (unsigned long long)v;
            number = 0;
        }
        else if (v == 10000) {
            has_unit = 1;
            total += (section + number) * 10000ull;
            section = number = 0;
        }
        else {
            has_unit = 1;
            total = (total + section + number) * 100000000ull;
            section = number = 0;
        }
        i += k;
    }
    next_len = end - i;
    /* words, not numbers */
    if (nchars == 1 && memcmp(s + start, "一", 3) == 0
        && (starts_with_any(s + i, next_len, cn_one_words_next,
                            COUNT(cn_one_words_next))
            || (start >= off + 3
                && starts_with_any(s + start - 3, 3, cn_one_words_prev,
                                   COUNT(cn_one_words_prev))))) {
        return i;
    }
    if ((nchars == 2 && memcmp(s + start, "万一", 6) == 0)
        || (nchars == 2 && memcmp(s + start, "千万", 6) == 0
            && next_len >= 3
            && (memcmp(s + i, "不", 3) == 0 || memcmp(s + i, "别", 3) == 0
                || memcmp(s + i, "要", 3) == 0))
        || (nchars == 1 && memcmp(s + start, "十", 3) == 0
            && next_len >= 3 && memcmp(s + i, "分", 3) == 0
            && !(next_len >= 6 && memcmp(s + i + 3, "钟", 3) == 0))
        || (next_len >= 6 && memcmp(s + i, "进制", 6) == 0)
        || (nchars == 1 && memcmp(s + start, "百", 3) == 0)) {
        return i;
    }
    pct = preceded_by(s, start, off, "百分之");
    if (nchars > CN_NUM_MAX_RUN || overflow) {
        bag_add_at(&sd->numbers, s + start, i - start, start);
    }
    else if (!has_unit && nchars > 1) {
        add_number(sd, start, 0, digits, nchars, NULL, 0, pct); /* 二〇二四 */
    }
    else {
        add_number_value(sd, start, total + section + number, pct);
    }
    return i;
}

static void scan_numbers(side_t *sd, size_t off, size_t len)
{
    const unsigned char *s = (const unsigned char *)sd->text.data;
    size_t i = off, end = off + len, k;
    uint32_t cp;

    while (i < end) {
        if (is_digit(s[i])) {
            i = scan_ascii_number(sd, off, end, i);
            continue;
        }
        if (s[i] >= 0xE0 && cn_numeral(sd->text.data + i, end - i, &k) >= 0) {
            i = scan_cn_number(sd, off, end, i);
            continue;
        }
        k = cs_utf8_decode(s + i, end - i, &cp);
        i += k ? k : 1;
    }
}

/* English number words: "twenty-five", "two hundred and ten". */
static void number_words_scan(side_t *sd)
{
    size_t i = 0;

    while (i < sd->nt) {
        unsigned long long total = 0, current = 0;
        size_t j = i, words = 0;
        const tok_t *t = &sd->t[i];

        if (t->kind != TK_WORD || t->lex == NULL
            || !(t->lex->cls & (L_NUM | L_SCALE))) {
            i++;
            continue;
        }
        while (j < sd->nt) {
            const tok_t *u = &sd->t[j];
            unsigned long long v;
            if (u->kind == TK_SYM && j + 1 < sd->nt && u->len == 1
                && tok_text(sd, u)[0] == '-' && sd->t[j + 1].lex != NULL
                && (sd->t[j + 1].lex->cls & L_NUM)) {
                j++;
                continue;
            }
            if (u->kind == TK_WORD && u->flen == 3
                && memcmp(tok_fold(sd, u), "and", 3) == 0 && words > 0
                && j + 1 < sd->nt && sd->t[j + 1].lex != NULL
                && (sd->t[j + 1].lex->cls & (L_NUM | L_SCALE))) {
                j++;
                continue;
            }
            if (u->kind != TK_WORD || u->lex == NULL
                || !(u->lex->cls & (L_NUM | L_SCALE))) {
                break;
            }
            v = strtoull(u->lex->num, NULL, 10);
            if (u->lex->cls & L_SCALE) {
                if (current == 0) {
                    current = 1;
                }
                if (v == 100) {
                    current *= 100;
                }
                else {
                    total += current * v;
                    current = 0;
                }
            }
            else {
                current += v;
            }
            words++;
            j++;
        }
        /* a lone "one" is a pronoun more often than a number */
        if (!(words == 1 && total + current == 1)) {
            add_number_value(sd, t->off, total + current, 0);
        }
        i = j;
    }
}

/* ---- names, identifiers, negations, languages ---------------------------- */

/* The script most of the words are written in (S_NONE: no words). */
static int script(const side_t *sd)
{
    unsigned best = 0;
    int s, which = S_NONE;

    for (s = S_LATIN; s < S_COUNT; s++) {
        if (sd->script_words[s] > best) {
            best = sd->script_words[s];
            which = s;
        }
    }
    return which;
}

/* Candidate kinds (first byte of a candidate): */
#define CAND_WORD 'w'     /* a folded word (base before any apostrophe) */
#define CAND_PHRASE 'p'   /* folded words separated by single spaces */
#define CAND_CJK 'c'      /* CJK text, found as a substring */
#define CAND_EXACT 'x'    /* a word exactly as written */
#define CAND_KEYWORD 'k'  /* a folded whole word */

static void names_scan(side_t *sd)
{
    size_t i;

    for (i = 0; i < sd->nt; i++) {
        const tok_t *t = &sd->t[i];
        const lexent_t *lx = t->lex;
        size_t p;

        if (t->kind != TK_WORD) {
            continue;
        }
        /* places of several words */
        for (p = 0; lx != NULL && (lx->cls & L_PHRASE)
                    && p < COUNT(place_phrases); p++) {
            const char *ph = place_phrases[p];
            size_t j = i, pos = 0, plen = strlen(ph);
            while (j < sd->nt && sd->t[j].kind == TK_WORD) {
                const tok_t *u = &sd->t[j];
                if (pos + u->blen > plen
                    || memcmp(ph + pos, tok_fold(sd, u), u->blen) != 0) {
                    break;
                }
                pos += u->blen;
                j++;
                if (pos == plen) {
                    bag_add2(&sd->names, CAND_PHRASE, ph, plen);
                    break;
                }
                if (ph[pos] != ' ') {
                    break;
                }
                pos++;
            }
        }
        if (lx != NULL && (lx->cls & L_PLACE)) {
            bag_add2(&sd->names, CAND_WORD, tok_fold(sd, t), t->blen);
            continue;
        }
        if ((t->flags & TF_DIGIT) || t->blen == 0) {
            continue;
        }
        if (lx != NULL && (lx->cls & (L_NEG | L_NUM | L_SCALE | L_LANG
                                      | L_FORMAT | L_UNIT))) {
            continue;
        }
        if (sd->cjk_text) {
            /* 把feature分支rebase到main上: Latin words in Chinese */
            bag_add2(&sd->names, CAND_WORD, tok_fold(sd, t), t->blen);
            continue;
        }
        if (lx != NULL && (lx->cls & L_COMMON)) {
            continue;
        }
        if ((t->flags & (TF_CAP | TF_UPPER)) && !(t->flags & TF_CAMEL)
            && !sd->shouting) {
            bag_add2(&sd->names, CAND_WORD, tok_fold(sd, t), t->blen);
        }
    }
}

/* A text mostly in capitals ("HOW MANY BONES ARE IN THE HUMAN BODY")
 * tells nothing about names by its capitals. */
static void shouting_scan(side_t *sd)
{
    size_t i, words = 0, caps = 0;

    for (i = 0; i < sd->nt; i++) {
        const tok_t *t = &sd->t[i];
        if (t->kind == TK_WORD && !(t->flags & TF_DIGIT) && t->len > 1) {
            words++;
            caps += (t->flags & TF_UPPER) != 0;
        }
    }
    sd->shouting = words >= 3 && caps * 10 >= words * SHOUT_TENTHS;
}

static void idents_scan(side_t *sd)
{
    size_t i;

    for (i = 0; i < sd->nt; i++) {
        const tok_t *t = &sd->t[i];

        if (t->kind != TK_WORD) {
            continue;
        }
        if ((t->flags & (TF_SNAKE | TF_DOT | TF_CAMEL | TF_CALL | TF_CODE))
            && !(t->flags & TF_DIGIT)) {
            bag_add2(&sd->idents, CAND_EXACT, tok_text(sd, t), t->len);
        }
        else if (t->lex != NULL && (t->lex->cls & L_KEYWORD)
                 && t->blen == t->flen) {
            bag_add2(&sd->idents, CAND_KEYWORD, tok_fold(sd, t), t->flen);
        }
    }
}

static int cn_is_neg(const char *s, size_t n, size_t i, uint32_t cp)
{
    size_t k;

    if (cp != 0x4E0D && cp != 0x6CA1 && cp != 0x65E0 && cp != 0x975E
        && cp != 0x522B && cp != 0x672A && cp != 0x52FF) {
        return 0;                       /* 不 没 无 非 别 未 勿 */
    }
    /* 能不能, 是不是, 有没有: a question, not a negation */
    if (i >= 3 && i + 6 <= n && memcmp(s + i - 3, s + i + 3, 3) == 0
        && (cp == 0x4E0D || cp == 0x6CA1)) {
        return 0;
    }
    for (k = 0; k < COUNT(cn_not_neg); k++) {
        const char *w = cn_not_neg[k];
        /* the word starts at i, or ends at i (two characters each) */
        if ((i + 6 <= n && memcmp(s + i, w, 6) == 0)
            || (i >= 3 && i + 3 <= n && memcmp(s + i - 3, w, 6) == 0)) {
            return 0;
        }
    }
    return 1;
}

/* Whether word t names a language: "Go", "C" and "R" only with a capital
 * inside a sentence. */
static int is_lang(const tok_t *t)
{
    const lexent_t *lx = t->lex;

    return lx != NULL && (lx->cls & L_LANG)
           && (!(lx->cls & L_CASED)
               || ((t->flags & TF_CAP) && !(t->flags & TF_SENT)));
}

/* Negations, languages, formats and names in one CJK run s (n bytes):
 * words of the CJK list (longest first, not overlapping), and the suffix
 * rule outside them: X省, X市, X县 (two characters before), X国, X州
 * (one). */
static void cjk_scan(side_t *sd, size_t off, size_t n)
{
    const char *s = sd->text.data + off;
    const unsigned char *u = (const unsigned char *)s;
    size_t j = 0, skip = 0, p1 = SIZE_MAX, p2 = SIZE_MAX;
    const lex_t *e;
    uint32_t cp;

    while (j < n) {
        size_t k, suffix2;
        int inside = j < skip;          /* within a word of the list */

        cp = 0;
        k = cs_utf8_decode(u + j, n - j, &cp);
        k = k ? k : 1;
        if (cn_is_neg(s, n, j, cp)) {
            sd->negations++;
        }
        if (!inside
            && (e = cjk_match(s + j, n - j, L_LANG | L_FORMAT | L_UNIT
                                            | L_PLACE | L_WORD)) != NULL) {
            if (e->cls & L_LANG) {
                bag_add(&sd->langs, e->canon, strlen(e->canon));
            }
            else if (e->cls & L_FORMAT) {
                bag_add(&sd->formats, e->canon, strlen(e->canon));
            }
            else if (e->cls & L_PLACE) {
                bag_add2(&sd->names, CAND_CJK, e->w, strlen(e->w));
            }
            if (e->cls & (L_LANG | L_FORMAT | L_UNIT)) {
                bag_add_at(&sd->order, e->canon, strlen(e->canon), off + j);
            }
            skip = j + strlen(e->w);
        }
        if (p1 != SIZE_MAX && !inside
            && (suffix2 = starts_with_any(s + j, k, cn_place_suffix2,
                                          COUNT(cn_place_suffix2)),
                suffix2 || starts_with_any(s + j, k, cn_place_suffix1,
                                           COUNT(cn_place_suffix1)))
            && !starts_with_any(s + p1, j + k - p1, cn_not_place,
                                COUNT(cn_not_place))
            && !starts_with_any(s + p1, j - p1, cn_not_name_chars,
                                COUNT(cn_not_name_chars))) {
            if (!suffix2) {
                bag_add2(&sd->names, CAND_CJK, s + p1, j + k - p1);
            }
            else if (p2 != SIZE_MAX
                     && !starts_with_any(s + p2, p1 - p2, cn_not_name_chars,
                                         COUNT(cn_not_name_chars))) {
                bag_add2(&sd->names, CAND_CJK, s + p2, j + k - p2);
            }
        }
        p2 = p1;
        p1 = j;
        j += k;
    }
}

/* Negations, languages, formats, and CJK names. */
static void words_scan(side_t *sd)
{
    size_t i;

    for (i = 0; i < sd->nt; i++) {
        const tok_t *t = &sd->t[i];
        const lexent_t *lx = t->lex;

        if (t->kind == TK_WORD) {
            if ((lx != NULL && (lx->cls & L_NEG)) || (t->flags & TF_NT)) {
                sd->negations++;
            }
            if (is_lang(t)) {
                bag_add(&sd->langs, lx->lang, strlen(lx->lang));
            }
            if (lx != NULL && (lx->cls & L_FORMAT)) {
                bag_add(&sd->formats, lx->format, strlen(lx->format));
            }
            if (is_lang(t) || (lx != NULL && (lx->cls & (L_FORMAT | L_UNIT)))) {
                /* as written: MySQL and PostgreSQL are both "sql" */
                bag_add_at(&sd->order, tok_fold(sd, t), t->blen, t->off);
            }
            if (t->flags & TF_DIGIT) {
                /* a unit written onto its number: "5km", "100ms" */
                const char *f = tok_fold(sd, t);
                const lexent_t *u = NULL;
                size_t d = 0;
                while (d < t->blen && (is_digit((unsigned char)f[d])
                                       || f[d] == '.' || f[d] == ',')) {
                    d++;
                }
                if (d < t->blen) {
                    u = lex_get(f + d, t->blen - d);
                }
                if (u != NULL && (u->cls & L_UNIT)) {
                    bag_add_at(&sd->order, u->unit, strlen(u->unit),
                               t->off + d);
                }
            }
        }
        else if (t->kind == TK_CJK) {
            cjk_scan(sd, t->off, t->len);
        }
    }
}

/* ---- direction ---------------------------------------------------------- */

enum {
    D_SKIP,       /* unimportant: a connector looks past it */
    D_BREAK,      /* punctuation: a connector does not look past it */
    D_ITEM,       /* something a direction can run from or to */
    D_CONN,       /* to, into, than, ->, 转换成, 到, 比, ... */
    D_HAN         /* a CJK character outside the word list: the two
                   * nearest a connector make its item (农历 换算成 公历) */
};

typedef struct {
    int kind;
    const char *name;
    size_t len;
    unsigned cost;        /* D_SKIP: how much of the window it uses */
} ditem_t;

typedef struct {
    ditem_t *v;
    size_t n;
    size_t cap;
} dseq_t;

static void dpush(dseq_t *d, int kind, const char *name, size_t len)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 32;
        d->v = cs_realloc(d->v, d->cap * sizeof(*d->v));
    }
    d->v[d->n].kind = kind;
    d->v[d->n].name = name;
    d->v[d->n].len = len;
    d->v[d->n].cost = DIR_WORD_COST;
    d->n++;
}

/* What a word is to a direction. */
static void dword(const side_t *sd, const tok_t *t, dseq_t *d)
{
    const lexent_t *lx = t->lex;

    if (lx != NULL && (lx->cls & L_CONN)) {
        dpush(d, D_CONN, NULL, 0);
    }
    else if (is_lang(t) || sd->cjk_text
             || (lx != NULL && (lx->cls & (L_FORMAT | L_UNIT)))) {
        dpush(d, D_ITEM, tok_fold(sd, t), t->blen);
    }
    else if (lx != NULL && (lx->cls & L_NUM)) {
        dpush(d, D_ITEM, lx->num, strlen(lx->num));
    }
    else if (t->len == 1 && (t->flags & TF_CAP) && !(t->flags & TF_SENT)
             && !sd->shouting && tok_text(sd, t)[0] != 'I') {
        dpush(d, D_ITEM, tok_fold(sd, t), t->blen);     /* account B */
    }
    else if (lx != NULL && (lx->cls & (L_COMMON | L_NEG | L_SCALE))) {
        dpush(d, D_SKIP, NULL, 0);
    }
    else {
        dpush(d, D_ITEM, tok_fold(sd, t), t->blen);
    }
}

static void dsymbol(const side_t *sd, size_t *i, dseq_t *d)
{
    const tok_t *t = &sd->t[*i];
    const char *s = tok_text(sd, t);

    if (t->len == 3 && (memcmp(s, "\xE2\x86\x92", 3) == 0
                        || memcmp(s, "\xE2\x87\x92", 3) == 0)) {
        dpush(d, D_CONN, NULL, 0);                      /* → ⇒ */
    }
    else if ((s[0] == '-' || s[0] == '=') && *i + 1 < sd->nt
             && sd->t[*i + 1].kind == TK_SYM
             && tok_text(sd, &sd->t[*i + 1])[0] == '>'
             && sd->t[*i + 1].off == t->off + 1) {
        dpush(d, D_CONN, NULL, 0);                      /* -> => */
        (*i)++;
    }
    else if (strchr(".,;:!?", s[0]) != NULL
             || (t->len == 3 && (memcmp(s, "\xE3\x80\x82", 3) == 0
                                 || memcmp(s, "\xE3\x80\x81", 3) == 0))) {
        dpush(d, D_BREAK, NULL, 0);                     /* also 。 、 */
    }
    else {
        dpush(d, D_SKIP, NULL, 0);
    }
}

/* What the characters of a CJK run are to a direction. */
static void dcjk(side_t *sd, const tok_t *t, dseq_t *d)
{
    const char *s = tok_text(sd, t);
    size_t j = 0, q, kn;

    while (j < t->len) {
        const lex_t *e, *a = NULL, *b = NULL;
        uint32_t cp;
        size_t k;

        /* 中译英 */
        if (j + 9 <= t->len && memcmp(s + j + 3, "译", 3) == 0) {
            for (q = 0; q < COUNT(cjk_lang_abbr); q++) {
                if (memcmp(s + j, cjk_lang_abbr[q].w, 3) == 0) {
                    a = &cjk_lang_abbr[q];
                }
                if (memcmp(s + j + 6, cjk_lang_abbr[q].w, 3) == 0) {
                    b = &cjk_lang_abbr[q];
                }
            }
            if (a != NULL && b != NULL) {
                dpush(d, D_ITEM, a->canon, 2);
                dpush(d, D_CONN, NULL, 0);
                dpush(d, D_ITEM, b->canon, 2);
                bag_add(&sd->langs, a->canon, 2);
                bag_add(&sd->langs, b->canon, 2);
                j += 9;
                continue;
            }
        }
        e = cjk_match(s + j, t->len - j, L_LANG | L_FORMAT | L_UNIT
                                         | L_PLACE | L_CONN | L_WORD);
        if (e == NULL || (e->cls & L_WORD)) {
            k = e != NULL ? strlen(e->w)
                : cs_utf8_decode((const unsigned char *)s + j, t->len - j,
                                 &cp);
            k = k ? k : 1;
            if (e == NULL && cn_numeral(s + j, k, &kn) < 0
                && !starts_with_any(s + j, k, cn_filler_chars,
                                    COUNT(cn_filler_chars))
                && !starts_with_any(s + j, k, cn_dir_filler_chars,
                                    COUNT(cn_dir_filler_chars))) {
                dpush(d, D_HAN, s + j, k);
            }
            else {
                dpush(d, D_SKIP, NULL, 0);
            }
            d->v[d->n - 1].cost = DIR_CJK_COST;
            j += k;
            continue;
        }
        if (e->cls & L_CONN) {
            dpush(d, D_CONN, NULL, 0);
        }
        else {
            const char *c = e->canon ? e->canon : e->w;
            dpush(d, D_ITEM, c, strlen(c));
        }
        j += strlen(e->w);
    }
}

/* The item nearest to connector k in direction step (-1 or +1), looking
 * past at most DIR_WINDOW unimportant entries, into *name and *len;
 * returns 0 if there is none. Two CJK characters next to each other
 * make one item, in text order. */
static int dnear(const dseq_t *d, size_t k, int step, const char **name,
                 size_t *len)
{
    size_t i = k;
    unsigned used = 0;

    while ((step < 0 ? i > 0 : i + 1 < d->n)) {
        const ditem_t *e;
        i = step < 0 ? i - 1 : i + 1;
        e = &d->v[i];
        if (e->kind == D_ITEM) {
            *name = e->name;
            *len = e->len;
            return 1;
        }
        if (e->kind == D_HAN) {
            const ditem_t *f = (step < 0 ? i > 0 : i + 1 < d->n)
                               ? &d->v[step < 0 ? i - 1 : i + 1] : NULL;
            *name = e->name;
            *len = e->len;
            if (f != NULL && f->kind == D_HAN) {
                *name = step < 0 ? f->name : e->name;
                *len = e->len + f->len;
            }
            return 1;
        }
        used += e->cost;
        if (e->kind != D_SKIP || used > DIR_WINDOW * DIR_WORD_COST) {
            return 0;
        }
    }
    return 0;
}

/* Ordered pairs "from>to" around every connector. */
static void direction_scan(side_t *sd)
{
    dseq_t d = {NULL, 0, 0};
    size_t i;

    for (i = 0; i < sd->nt; i++) {
        const tok_t *t = &sd->t[i];

        if (t->kind == TK_WORD) {
            dword(sd, t, &d);
        }
        else if (t->kind == TK_SYM) {
            dsymbol(sd, &i, &d);
        }
        else {
            dcjk(sd, t, &d);
        }
    }
    for (i = 0; i < d.n; i++) {
        const char *a, *b;
        size_t la, lb;
        char buf[256];
        int k;

        if (d.v[i].kind != D_CONN || !dnear(&d, i, -1, &a, &la)
            || !dnear(&d, i, +1, &b, &lb)) {
            continue;
        }
        k = snprintf(buf, sizeof(buf), "%.*s>%.*s", (int)la, a, (int)lb, b);
        bag_add(&sd->pairs, buf, k < (int)sizeof(buf) ? (size_t)k
                : sizeof(buf) - 1);
    }
    cs_free(d.v);
}

/* ---- content of long texts ---------------------------------------------- */

static void content_add(side_t *sd, const char *s, size_t n, uint64_t tag)
{
    if (sd->ncontent == sd->ccap) {
        sd->ccap = sd->ccap ? sd->ccap * 2 : 64;
        sd->content = cs_realloc(sd->content,
                                 sd->ccap * sizeof(*sd->content));
    }
    sd->content[sd->ncontent++] = fnv(s, n) ^ tag;
}

static int is_operator(char c)
{
    return c != '\0' && strchr("<>=!+-*/%&|^", c) != NULL;
}

/* The nearest non-blank byte before off (step -1) or at/after off
 * (step +1) in the text, or 0. */
static unsigned char near_byte(const side_t *sd, size_t off, int step)
{
    const unsigned char *s = (const unsigned char *)sd->text.data;

    if (step < 0) {
        while (off > 0 && s[off - 1] == ' ') {
            off--;
        }
        return off > 0 ? s[off - 1] : 0;
    }
    while (off < sd->text.len && s[off] == ' ') {
        off++;
    }
    return off < sd->text.len ? s[off] : 0;
}

static int operand_byte(unsigned char c, int after)
{
    return is_digit(c) || ascii_lower(c) || ascii_upper(c) || c == '_'
           || c == (after ? '(' : ')') || c == (after ? '[' : ']');
}

/* Whether the operator characters [off, end) are an operator between two
 * operands ("n * 2", "a<=b", "5-3"), not decoration: "---" rules, a
 * "*" left over from emphasis, "500-word", "15%", "!" after a word. */
static int is_operator_run(const side_t *sd, size_t off, size_t end)
{
    const char *s = sd->text.data;
    unsigned char before = near_byte(sd, off, -1);
    unsigned char after = near_byte(sd, end, +1);
    size_t n = end - off, i;

    if (!operand_byte(before, 0) || !operand_byte(after, 1)) {
        return 0;
    }
    if (n == 1 && (s[off] == '-' || s[off] == '+') && off > 0
        && s[off - 1] != ' ' && !is_digit(after)) {
        return 0;                       /* a hyphen: 500-word, thank-you */
    }
    if (s[off] == '%' && off > 0 && is_digit((unsigned char)s[off - 1])) {
        return 0;                       /* a percent sign */
    }
    if (n == 1 && s[off] == '!') {
        return 0;
    }
    for (i = off + 1; i < end && s[i] == s[off]; i++) {
    }
    return !(n >= 3 && i == end);       /* ---, ===, *** */
}

/* Content tokens: uncommon words, CJK characters that are not particles,
 * numerals or negations, and runs of operator characters ("<=", "===");
 * the operator runs also go to sd->ops ("n * 2" is not "n ** 2"). */
static void content_scan(side_t *sd)
{
    size_t i;

    for (i = 0; i < sd->nt; i++) {
        const tok_t *t = &sd->t[i];
        const char *s = tok_text(sd, t);

        if (t->kind == TK_WORD) {
            if (!(t->flags & TF_DIGIT) && t->blen > 0
                && (t->lex == NULL || !(t->lex->cls & (L_COMMON | L_NEG
                                                       | L_NUM | L_SCALE)))) {
                content_add(sd, tok_fold(sd, t), t->blen, 1);
            }
        }
        else if (t->kind == TK_SYM) {
            size_t j = i, end = t->off;
            while (j < sd->nt && sd->t[j].kind == TK_SYM
                   && sd->t[j].off == end
                   && is_operator(tok_text(sd, &sd->t[j])[0])) {
                end += sd->t[j].len;
                j++;
            }
            if (j > i) {
                if (is_operator_run(sd, t->off, end)) {
                    content_add(sd, s, end - t->off, 2);
                    bag_add(&sd->ops, s, end - t->off);
                }
                i = j - 1;
            }
        }
        else {
            size_t j = 0, k, kn;
            while (j < t->len) {
                uint32_t cp = 0;
                k = cs_utf8_decode((const unsigned char *)s + j, t->len - j,
                                   &cp);
                k = k ? k : 1;
                if (!starts_with_any(s + j, k, cn_filler_chars,
                                     COUNT(cn_filler_chars))
                    && cn_numeral(s + j, k, &kn) < 0
                    && !cn_is_neg(s, t->len, j, cp)) {
                    content_add(sd, s + j, k, 3);
                }
                j += k;
            }
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Tokens in one multiset and not in the other, both ways. */
static size_t content_diff(side_t *a, side_t *b)
{
    size_t i = 0, j = 0, diff = 0;

    qsort(a->content, a->ncontent, sizeof(uint64_t), cmp_u64);
    qsort(b->content, b->ncontent, sizeof(uint64_t), cmp_u64);
    while (i < a->ncontent || j < b->ncontent) {
        if (j == b->ncontent
            || (i < a->ncontent && a->content[i] < b->content[j])) {
            i++;
            diff++;
        }
        else if (i == a->ncontent || b->content[j] < a->content[i]) {
            j++;
            diff++;
        }
        else {
            i++;
            j++;
        }
    }
    return diff;
}

/* ---- building a side ---------------------------------------------------- */

static void block_add(side_t *sd, size_t off, size_t len)
{
    const unsigned char *s = (const unsigned char *)sd->text.data + off;
    cs_buf_t b;
    size_t i = 0;
    int blank = 0;

    cs_buf_init(&b);
    while (i < len) {
        uint32_t cp;
        size_t k = cs_utf8_decode(s + i, len - i, &cp);
        if (k != 0 && cs_uc_is_space(cp)) {
            blank = 1;
            i += k;
            continue;
        }
        if (blank && b.len > 0) {
            cs_buf_append(&b, " ", 1);
        }
        blank = 0;
        k = k ? k : 1;
        cs_buf_append(&b, s + i, k);
        i += k;
    }
    bag_add(&sd->blocks, b.len ? b.data : "", b.len);
    cs_buf_free(&b);
}

static void on_piece(void *ctx, int kind, size_t off, size_t len)
{
    side_t *sd = ctx;
    const char *s = sd->text.data + off;
    size_t r = 0;

    if (kind == CS_NORM_BLOCK) {
        block_add(sd, off, len);
        sd->sentence = 1;
        return;
    }
    if (kind == CS_NORM_SPAN) {
        while (r < len / 2 && s[r] == '`') {
            r++;
        }
        off += r;
        len -= 2 * r;
        sd->in_code = 1;
    }
    tokenize(sd, off, len);
    scan_numbers(sd, off, len);
    sd->in_code = 0;
}

static void side_init(side_t *sd)
{
    memset(sd, 0, sizeof(*sd));
    cs_buf_init(&sd->text);
    cs_buf_init(&sd->fold);
    cs_buf_init(&sd->tmp);
}

static int side_build(side_t *sd, const char *text, size_t len)
{
    if (cs_normalize_opts(text, len, CS_NORM_KEEP_CASE, &sd->text)
        != CS_OK) {
        return CS_ERR;
    }
    if (sd->text.len == 0) {
        return CS_OK;
    }
    sd->sentence = 1;
    cs_normalize_pieces(sd->text.data, sd->text.len, on_piece, sd);
    number_words_scan(sd);
    shouting_scan(sd);
    sd->cjk_text = script(sd) == S_ZH || script(sd) == S_JA;
    names_scan(sd);
    idents_scan(sd);
    words_scan(sd);
    direction_scan(sd);
    content_scan(sd);
    return CS_OK;
}

static void side_free(side_t *sd)
{
    cs_buf_free(&sd->text);
    cs_buf_free(&sd->fold);
    cs_buf_free(&sd->tmp);
    cs_free(sd->t);
    bag_free(&sd->numbers);
    bag_free(&sd->blocks);
    bag_free(&sd->names);
    bag_free(&sd->idents);
    bag_free(&sd->langs);
    bag_free(&sd->formats);
    bag_free(&sd->pairs);
    bag_free(&sd->order);
    bag_free(&sd->ops);
    cs_free(sd->content);
}

/* ---- comparing ---------------------------------------------------------- */

/* How often candidate c (kind byte, then text) occurs in sd; with
 * order, each occurrence is also added to it, at its place. */
static size_t count_in(const side_t *sd, const item_t *c, bag_t *order)
{
    const char *w = c->s + 1;
    size_t wl = c->len - 1, n = 0, i;

    switch (c->s[0]) {
    case CAND_CJK:
        for (i = 0; i < sd->nt; i++) {
            const tok_t *t = &sd->t[i];
            const char *p = tok_text(sd, t), *end = p + t->len;
            if (t->kind != TK_CJK) {
                continue;
            }
            while (p + wl <= end
                   && (p = memmem(p, (size_t)(end - p), w, wl)) != NULL) {
                if (order != NULL) {
                    bag_add_at(order, c->s, c->len,
                               (size_t)(p - sd->text.data));
                }
                n++;
                p += wl;
            }
        }
        return n;
    case CAND_PHRASE:
        for (i = 0; i < sd->nt; i++) {
            size_t j = i, pos = 0;
            if (sd->t[i].lex == NULL || !(sd->t[i].lex->cls & L_PHRASE)) {
                continue;
            }
            while (j < sd->nt && sd->t[j].kind == TK_WORD
                   && pos + sd->t[j].blen <= wl
                   && memcmp(w + pos, tok_fold(sd, &sd->t[j]),
                             sd->t[j].blen) == 0) {
                pos += sd->t[j].blen;
                j++;
                if (pos == wl) {
                    if (order != NULL) {
                        bag_add_at(order, c->s, c->len, sd->t[i].off);
                    }
                    n++;
                    break;
                }
                if (w[pos] != ' ') {
                    break;
                }
                pos++;
            }
        }
        return n;
    default:
        break;
    }
    for (i = 0; i < sd->nt; i++) {
        const tok_t *t = &sd->t[i];
        int hit;
        if (t->kind != TK_WORD) {
            continue;
        }
        switch (c->s[0]) {
        case CAND_WORD:
            hit = t->blen == wl && memcmp(tok_fold(sd, t), w, wl) == 0;
            break;
        case CAND_KEYWORD:
            hit = t->flen == wl && memcmp(tok_fold(sd, t), w, wl) == 0;
            break;
        default:            /* CAND_EXACT */
            hit = t->len == wl && memcmp(tok_text(sd, t), w, wl) == 0;
            break;
        }
        if (hit && order != NULL) {
            bag_add_at(order, c->s, c->len, t->off);
        }
        n += hit;
    }
    return n;
}

/* Every candidate of either side occurs as often in both. */
static int counts_equal(const side_t *a, const side_t *b, bag_t *ca,
                        bag_t *cb)
{
    bag_t *bags[2] = {ca, cb};
    size_t k, i;

    bag_sort(ca, 1);
    bag_sort(cb, 1);
    for (k = 0; k < 2; k++) {
        for (i = 0; i < bags[k]->n; i++) {
            if (count_in(a, &bags[k]->v[i], NULL)
                != count_in(b, &bags[k]->v[i], NULL)) {
                return 0;
            }
        }
    }
    return 1;
}


/* Equal, or one typo apart in words of TYPO_MIN_LEN bytes or more. */
static int near_word(const char *a, size_t la, const char *b, size_t lb)
{
    size_t i = 0;

    if (la == lb && memcmp(a, b, la) == 0) {
        return 1;
    }
    if (la < TYPO_MIN_LEN || lb < TYPO_MIN_LEN || la > lb + 1
        || lb > la + 1) {
        return 0;
    }
    while (i < la && i < lb && a[i] == b[i]) {
        i++;
    }
    if (la == lb) {
        return memcmp(a + i + 1, b + i + 1, la - i - 1) == 0
               || (i + 1 < la && a[i] == b[i + 1] && a[i + 1] == b[i]
                   && memcmp(a + i + 2, b + i + 2, la - i - 2) == 0);
    }
    return la > lb ? memcmp(a + i + 1, b + i, lb - i) == 0
                   : memcmp(a + i, b + i + 1, la - i) == 0;
}

/* Splits a pair "from>to" at its ">". */
static void pair_split(const item_t *p, const char **x, size_t *lx,
                       const char **y, size_t *ly)
{
    const char *gt = memchr(p->s, '>', p->len);

    *x = p->s;
    *lx = gt != NULL ? (size_t)(gt - p->s) : p->len;
    *y = gt != NULL ? gt + 1 : p->s + p->len;
    *ly = p->len - *lx - (gt != NULL);
}

/* A pair of a that b resolves differently: b has no pair equal to it (a
 * typo forgiven) but has one sharing a side with it. "celsius>fahrenheit"
 * against "fahrenheit>celsius", "folder>src" against "folder>backup".
 * A pair found on one side only is not a conflict: "better to rent"
 * makes no pair, its typo "bettre to rent" does. */
static int pairs_conflict(const bag_t *a, const bag_t *b)
{
    size_t i, j;

    for (i = 0; i < a->n; i++) {
        const char *p1, *p2;
        size_t l1, l2;
        int same = 0, shared = 0;

        pair_split(&a->v[i], &p1, &l1, &p2, &l2);
        for (j = 0; j < b->n && !same; j++) {
            const char *q1, *q2;
            size_t m1, m2;
            int n11, n22;
            pair_split(&b->v[j], &q1, &m1, &q2, &m2);
            n11 = near_word(p1, l1, q1, m1);
            n22 = near_word(p2, l2, q2, m2);
            same = n11 && n22;
            shared |= n11 || n22 || near_word(p1, l1, q2, m2)
                      || near_word(p2, l2, q1, m1);
        }
        if (!same && shared) {
            return 1;
        }
    }
    return 0;
}

static int item_text_pos_cmp(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    int c = item_cmp(a, b);

    if (c != 0) {
        return c;
    }
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Drops the items marked with pos SIZE_MAX, then sorts by place. */
static void bag_compact(bag_t *x)
{
    size_t i, j = 0;

    for (i = 0; i < x->n; i++) {
        if (x->v[i].pos == SIZE_MAX) {
            cs_free(x->v[i].s);
        }
        else {
            x->v[j++] = x->v[i];
        }
    }
    x->n = j;
    if (x->n > 1) {
        qsort(x->v, x->n, sizeof(item_t), item_pos_cmp);
    }
}

/* Drops from a and b the items the other one lacks (a unit with a typo on
 * one side only), keeping of each text the first occurrences in text
 * order: only the order of what both hold is compared. Both bags are
 * sorted by text, then place, and walked together. */
static void keep_shared(bag_t *a, bag_t *b)
{
    size_t i = 0, j = 0;

    if (a->n > 1) {
        qsort(a->v, a->n, sizeof(item_t), item_text_pos_cmp);
    }
    if (b->n > 1) {
        qsort(b->v, b->n, sizeof(item_t), item_text_pos_cmp);
    }
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1
                : item_cmp(&a->v[i], &b->v[j]);
        size_t ea = i, eb = j, keep, k;

        /* the runs of equal text at i (if c <= 0) and at j (if c >= 0) */
        while (c <= 0 && ea < a->n && item_cmp(&a->v[ea], &a->v[i]) == 0) {
            ea++;
        }
        while (c >= 0 && eb < b->n && item_cmp(&b->v[eb], &b->v[j]) == 0) {
            eb++;
        }
        keep = (ea - i) < (eb - j) ? (ea - i) : (eb - j);
        for (k = i + keep; k < ea; k++) {
            a->v[k].pos = SIZE_MAX;
        }
        for (k = j + keep; k < eb; k++) {
            b->v[k].pos = SIZE_MAX;
        }
        i = ea;
        j = eb;
    }
    bag_compact(a);
    bag_compact(b);
}

/* The salient things (numbers, names of either side, languages,
 * formats, units) come in the same order: "10 divided by 4" is not "4
 * divided by 10", "account A to account B" not "account B to account A".
 * The classes are already known to be equal as multisets. */
static int order_equal(side_t *a, side_t *b)
{
    side_t *sides[2] = {a, b};
    bag_t names = {NULL, 0, 0};
    size_t k, i;
    int eq;

    for (k = 0; k < 2; k++) {
        for (i = 0; i < sides[k]->names.n; i++) {
            bag_add(&names, sides[k]->names.v[i].s, sides[k]->names.v[i].len);
        }
    }
    bag_sort(&names, 1);
    for (k = 0; k < 2; k++) {
        side_t *sd = sides[k];
        for (i = 0; i < sd->numbers.n; i++) {
            bag_add_at(&sd->order, sd->numbers.v[i].s, sd->numbers.v[i].len,
                       sd->numbers.v[i].pos);
        }
        for (i = 0; i < names.n; i++) {
            count_in(sd, &names.v[i], &sd->order);
        }
    }
    keep_shared(&a->order, &b->order);
    eq = bag_equal_ordered(&a->order, &b->order);
    bag_free(&names);
    return eq;
}

static const char *compare(side_t *a, side_t *b)
{
    int sa = script(a), sb = script(b);

    if (sa != S_NONE && sb != S_NONE && sa != sb) {
        return "language differs";
    }
    if (!bag_equal(&a->numbers, &b->numbers, 0)) {
        return "numbers differ";
    }
    if (!counts_equal(a, b, &a->names, &b->names)) {
        return "entities differ";
    }
    if (a->negations != b->negations) {
        return "negation differs";
    }
    if (!bag_equal(&a->blocks, &b->blocks, 0)
        || !counts_equal(a, b, &a->idents, &b->idents)
        || !bag_equal(&a->ops, &b->ops, 0)) {
        return "code identifiers differ";
    }
    if (!bag_equal(&a->langs, &b->langs, 1)) {
        return "language differs";
    }
    if (!bag_equal(&a->formats, &b->formats, 1)) {
        return "format differs";
    }
    if (pairs_conflict(&a->pairs, &b->pairs)
        || pairs_conflict(&b->pairs, &a->pairs) || !order_equal(a, b)) {
        return "direction differs";
    }
    if ((a->ncontent >= CONTENT_LONG_MIN || b->ncontent >= CONTENT_LONG_MIN)
        && content_diff(a, b) > CONTENT_DIFF_MAX) {
        return "content differs";
    }
    return NULL;
}

int cs_verify(const char *query, size_t qlen, const char *cand, size_t clen,
              cs_verify_result_t *res)
{
    side_t a, b;
    const char *why;
    int rv = CS_OK;

    pthread_once(&lex_once, lex_build);
    side_init(&a);
    side_init(&b);
    if (side_build(&a, query, qlen) != CS_OK
        || side_build(&b, cand, clen) != CS_OK) {
        res->ok = 0;
        res->reason = "text too long";
        rv = CS_ERR;
    }
    else {
        why = compare(&a, &b);
        res->ok = why == NULL;
        res->reason = why != NULL ? why : "ok";
    }
    side_free(&a);
    side_free(&b);
    return rv;
}
