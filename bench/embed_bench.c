/* Builtin embedder micro-benchmark.
 *
 * Times what ark-cached does to every lookup text on the semantic path
 * with the builtin embedder: cs_embed on a 2 KB prompt (normalisation,
 * feature extraction, hashing, L2 normalisation). Three prompts of about
 * the same size: English prose, Chinese prose, and English with a fenced
 * code block. Reports microseconds per embed (the median of several
 * batches) and, as the baseline measured in the same run, the cost of the
 * cs_normalize pass alone, which every embed includes.
 *
 * Usage: embed_bench [bytes] [iterations] [dim]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_embed.h"
#include "cs_normalize.h"

#define BATCHES 9

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Repeats the sentences of src (cycling, with a counter so that the
 * prompt is not one sentence over and over) up to about want bytes. */
static char *make_prompt(const char *const *src, size_t nsrc, size_t want,
                         const char *tail)
{
    size_t cap = want + strlen(tail) + 256, len = 0, k = 0;
    char *s = malloc(cap);

    if (s == NULL) {
        exit(1);
    }
    while (len + strlen(tail) < want) {
        len += (size_t)snprintf(s + len, cap - len, "%s ", src[k % nsrc]);
        k++;
    }
    len += (size_t)snprintf(s + len, cap - len, "%s", tail);
    return s;
}

/* Median microseconds per call of embed (what = 1) or normalise (0). */
static double time_it(cs_embedder_t *e, const char *text, long iters,
                      int what, float *v)
{
    double us[BATCHES];
    size_t len = strlen(text);
    cs_buf_t b;
    char err[256];
    long i;
    int s;

    cs_buf_init(&b);
    for (s = 0; s < BATCHES; s++) {
        double t0 = now_us();
        for (i = 0; i < iters; i++) {
            if (what) {
                if (cs_embed(e, &text, &len, 1, v, err, sizeof(err))
                    != CS_OK) {
                    fprintf(stderr, "%s\n", err);
                    exit(1);
                }
            }
            else {
                cs_normalize(text, len, &b);
            }
        }
        us[s] = (now_us() - t0) / (double)iters;
    }
    cs_buf_free(&b);
    qsort(us, BATCHES, sizeof(us[0]), cmp_double);
    return us[BATCHES / 2];
}

int main(int argc, char **argv)
{
    static const char *const english[] = {
        "You are a helpful assistant for a logistics company.",
        "Please summarise the following shipping report for the manager,",
        "keeping every number exactly as written and listing the delayed",
        "orders first.", "Order 4711 left Rotterdam on 3 March and reached",
        "Hamburg two days late because of a strike at the port.",
        "The customer in Munich has asked whether the remaining 12 pallets",
        "can be delivered before Friday without extra cost.",
        "Can you also explain, in plain English, why the fuel surcharge",
        "went up by 4.5% this quarter?"
    };
    static const char *const chinese[] = {
        "你是一家物流公司的智能助理。", "请帮我总结下面这份运输报告，",
        "保留所有数字，并先列出延误的订单。",
        "订单4711于三月三日从鹿特丹出发，",
        "因为港口罢工，晚了两天才到达汉堡。",
        "慕尼黑的客户想知道剩下的十二个托盘能否在周五之前送到，",
        "而且不产生额外费用。",
        "另外请用简单的话解释为什么本季度燃油附加费上涨了4.5%。"
    };
    static const char *const code_tail =
        "\n```python\ndef surcharge(base, rate=0.045):\n"
        "    return round(base * (1 + rate), 2)\n```\n"
        "Why does this return 104.5 for 100?";
    size_t bytes = argc > 1 ? (size_t)atol(argv[1]) : 2048;
    long iters = argc > 2 ? atol(argv[2]) : 2000;
    int dim = argc > 3 ? atoi(argv[3]) : 0;
    const char *names[3] = {"english", "chinese", "english+code"};
    char *prompts[3];
    cs_embedder_t *e;
    float *v;
    int k;

    if (bytes < 16 || iters < 1) {
        fprintf(stderr, "usage: embed_bench [bytes >= 16] [iterations] "
                "[dim]\n");
        return 2;
    }
    e = cs_embed_builtin_create(dim);
    if (e == NULL) {
        fprintf(stderr, "embed_bench: bad dim %d\n", dim);
        return 2;
    }
    v = malloc(sizeof(float) * (size_t)cs_embed_dim(e));
    prompts[0] = make_prompt(english, sizeof(english) / sizeof(english[0]),
                             bytes, "");
    prompts[1] = make_prompt(chinese, sizeof(chinese) / sizeof(chinese[0]),
                             bytes, "");
    prompts[2] = make_prompt(english, sizeof(english) / sizeof(english[0]),
                             bytes, code_tail);
    printf("embedder %s, %d iterations x %d batches, median per call\n",
           cs_embed_version(e), (int)iters, BATCHES);
    printf("%-14s %7s %14s %14s\n", "prompt", "bytes", "normalise_us",
           "embed_us");
    for (k = 0; k < 3; k++) {
        double n = time_it(e, prompts[k], iters, 0, v);
        double m = time_it(e, prompts[k], iters, 1, v);
        printf("%-14s %7zu %14.2f %14.2f\n", names[k], strlen(prompts[k]), n,
               m);
        free(prompts[k]);
    }
    free(v);
    cs_embed_free(e);
    return 0;
}
