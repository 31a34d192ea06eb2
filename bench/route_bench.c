/* Routing decision micro-benchmark.
 *
 * Times what mod_ark does per request to choose channels: read the live
 * view of every channel of the alias from shared signal slots
 * (ark_sig_view) and order them (ark_route_order), for 32 channels with
 * measured latencies, half of them tagged region=eu and a key requiring
 * region=eu, under each strategy. Reports nanoseconds per decision (the
 * median of several batches) and, as the baseline measured in the same
 * run, the cost of the view reads alone.
 *
 * Usage: route_bench [channels] [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "ark_route.h"
#include "ark_signals.h"

#define BATCHES 9

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 32;
    long iters = argc > 2 ? atol(argv[2]) : 200000;
    static const ark_breaker_conf_t bc = ARK_BREAKER_DEFAULTS;
    static const ark_weights_t w = ARK_WEIGHTS_NORMAL;
    apr_array_header_t *required, *tags_eu, *tags_us;
    ark_chan_slot_t *slots;
    ark_route_chan_t *chans;
    apr_pool_t *p;
    apr_time_t t = apr_time_now();
    int *order, norder, s, i;
    double views_ns[BATCHES] = { 0 };
    volatile int sink = 0;

    if (n < 1 || n > 4096 || iters < 1) {
        fprintf(stderr, "usage: route_bench [channels 1-4096] [iterations]\n");
        return 2;
    }
    apr_initialize();
    apr_pool_create(&p, NULL);
    ark_tags_parse(&required, "region=eu", p);
    ark_tags_parse(&tags_eu, "region=eu,tier=official", p);
    ark_tags_parse(&tags_us, "region=us,tier=official", p);
    slots = calloc((size_t)n, sizeof(*slots));
    chans = calloc((size_t)n, sizeof(*chans));
    order = calloc((size_t)n, sizeof(*order));
    for (i = 0; i < n; i++) {
        int k, probe;

        ark_sig_init(&slots[i]);
        /* 50 measured requests each, latencies spread over channels */
        for (k = 0; k < 50; k++) {
            ark_sig_acquire(&slots[i], &bc, t, &probe);
            ark_sig_release(&slots[i], &bc, t, probe,
                            k % 17 ? ARK_OUTCOME_SUCCESS
                                   : ARK_OUTCOME_FAILURE,
                            apr_time_from_msec(50 + 13 * i + k),
                            apr_time_from_msec(400 + 29 * i + k), 0);
        }
        chans[i].cost = 0.001 * (double)(1 + (i * 7) % n);
        chans[i].weight = (unsigned int)(1 + i % 5);
        chans[i].tags = i % 2 ? tags_us : tags_eu;
    }

    for (s = -1; s <= ARK_STRATEGY_COST; s++) {
        double batch[BATCHES];
        int b;

        for (b = 0; b < BATCHES; b++) {
            double t0 = now_ns();
            long it;

            for (it = 0; it < iters / BATCHES; it++) {
                for (i = 0; i < n; i++) {
                    ark_sig_view(&slots[i], &bc, t, &chans[i].view);
                }
                if (s >= 0) {
                    ark_route_order(order, &norder, NULL, chans, n,
                                    (ark_strategy_t)s, &w, required, 0,
                                    (uint64_t)it);
                    sink += order[0];
                }
            }
            batch[b] = (now_ns() - t0) / (double)(iters / BATCHES);
        }
        qsort(batch, BATCHES, sizeof(double), cmp_double);
        if (s < 0) {
            memcpy(views_ns, batch, sizeof(batch));
            printf("%-16s %9.0f ns per decision  (reading %d views)\n",
                   "baseline", batch[BATCHES / 2], n);
        }
        else {
            printf("%-16s %9.0f ns per decision  (%.2fx baseline)\n",
                   ark_strategy_name((ark_strategy_t)s), batch[BATCHES / 2],
                   batch[BATCHES / 2] / views_ns[BATCHES / 2]);
        }
    }
    free(slots);
    free(chans);
    free(order);
    apr_pool_destroy(p);
    apr_terminate();
    return sink == -1;
}
