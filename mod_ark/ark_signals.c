/* Live per-channel signals: lock-free updates of a shared slot.
 * See ark_signals.h for the model. */
#include <math.h>
#include <string.h>

#include "ark_signals.h"

void ark_sig_init(ark_chan_slot_t *s)
{
    memset(s, 0, sizeof(*s));
}

int ark_sig_bucket(apr_interval_time_t us)
{
    /* 4 buckets per octave above ARK_SIG_LAT_BASE_US:
     * bucket = ceil(4 * log2(us / base)), clamped to [0, 63].
     * E.g. 250 us -> 0, 500 us -> 4, 1 ms -> 8, 100 ms -> 35. */
    double x;
    int b;

    if (us <= ARK_SIG_LAT_BASE_US) {
        return 0;
    }
    x = 4.0 * log2((double)us / ARK_SIG_LAT_BASE_US);
    b = (int)ceil(x - 1e-9);
    return b >= ARK_SIG_LAT_BUCKETS ? ARK_SIG_LAT_BUCKETS - 1 : b;
}

double ark_sig_bucket_value_us(int bucket)
{
    /* bucket b covers (base * 2^((b-1)/4), base * 2^(b/4)] */
    if (bucket <= 0) {
        return ARK_SIG_LAT_BASE_US;
    }
    return ARK_SIG_LAT_BASE_US * pow(2.0, ((double)bucket - 0.5) / 4.0);
}

const char *ark_circuit_name(ark_circuit_t c)
{
    switch (c) {
    case ARK_CIRCUIT_OPEN:      return "open";
    case ARK_CIRCUIT_HALF_OPEN: return "half-open";
    default:                    return "closed";
    }
}

static int64_t win_slot_len(const ark_breaker_conf_t *bc)
{
    int64_t len = bc->window / ARK_SIG_WIN_SLOTS;

    return len > 0 ? len : 1;
}

/* The window slot for `now`, reset first if it holds an older epoch. */
static ark_sig_win_t *win_current(ark_chan_slot_t *s,
                                  const ark_breaker_conf_t *bc,
                                  apr_time_t now)
{
    int64_t epoch = now / win_slot_len(bc);
    ark_sig_win_t *w = &s->win[epoch % ARK_SIG_WIN_SLOTS];
    int64_t seen = atomic_load(&w->epoch);

    if (seen != epoch
        && atomic_compare_exchange_strong(&w->epoch, &seen, epoch)) {
        atomic_store(&w->ok, 0);
        atomic_store(&w->fail, 0);
    }
    return w;
}

static void win_sum(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                    apr_time_t now, unsigned int *ok, unsigned int *fail)
{
    int64_t epoch = now / win_slot_len(bc);
    int i;

    *ok = *fail = 0;
    for (i = 0; i < ARK_SIG_WIN_SLOTS; i++) {
        int64_t e = atomic_load(&s->win[i].epoch);

        if (e > epoch - ARK_SIG_WIN_SLOTS && e <= epoch) {
            *ok += atomic_load(&s->win[i].ok);
            *fail += atomic_load(&s->win[i].fail);
        }
    }
}

/* Empties every window slot (their epochs are kept). */
static void win_clear(ark_chan_slot_t *s)
{
    int i;

    for (i = 0; i < ARK_SIG_WIN_SLOTS; i++) {
        atomic_store(&s->win[i].ok, 0);
        atomic_store(&s->win[i].fail, 0);
    }
}

static ark_sig_hist_t *hist_current(ark_chan_slot_t *s, apr_time_t now)
{
    int64_t epoch = now / ARK_SIG_HIST_PERIOD;
    ark_sig_hist_t *h = &s->hist[epoch % 2];
    int64_t seen = atomic_load(&h->epoch);

    if (seen != epoch
        && atomic_compare_exchange_strong(&h->epoch, &seen, epoch)) {
        int i;

        for (i = 0; i < ARK_SIG_LAT_BUCKETS; i++) {
            atomic_store(&h->ttfb[i], 0);
            atomic_store(&h->total[i], 0);
        }
    }
    return h;
}

static void ewma_add(_Atomic int64_t *e, apr_interval_time_t sample)
{
    int64_t old = atomic_load(e), next;

    do {
        next = old == 0 ? sample : old + (sample - old) / 8;
        if (next <= 0) {
            next = 1;
        }
    } while (!atomic_compare_exchange_weak(e, &old, next));
}

/* P95 over the current and the previous histogram period, in ms. */
static double p95_ms(ark_chan_slot_t *s, apr_time_t now, int ttfb)
{
    int64_t epoch = now / ARK_SIG_HIST_PERIOD;
    uint64_t counts[ARK_SIG_LAT_BUCKETS] = { 0 }, total = 0, seen = 0;
    int g, i;

    for (g = 0; g < 2; g++) {
        int64_t e = atomic_load(&s->hist[g].epoch);

        if (e != epoch && e != epoch - 1) {
            continue;
        }
        for (i = 0; i < ARK_SIG_LAT_BUCKETS; i++) {
            uint32_t c = atomic_load(ttfb ? &s->hist[g].ttfb[i]
                                          : &s->hist[g].total[i]);

            counts[i] += c;
            total += c;
        }
    }
    if (total == 0) {
        return -1.0;
    }
    for (i = 0; i < ARK_SIG_LAT_BUCKETS; i++) {
        seen += counts[i];
        if (seen * 100 >= total * 95) {
            return ark_sig_bucket_value_us(i) / 1000.0;
        }
    }
    return ark_sig_bucket_value_us(ARK_SIG_LAT_BUCKETS - 1) / 1000.0;
}

int ark_sig_acquire(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                    apr_time_t now, int *probe)
{
    uint32_t state = atomic_load(&s->state);

    *probe = 0;
    if (atomic_load(&s->cool_until) > now) {
        return 0;
    }
    if (state == ARK_CIRCUIT_OPEN) {
        if (atomic_load(&s->open_until) > now) {
            return 0;
        }
        /* cool-down over: whoever flips it first starts the half-open
         * phase; everyone then competes for the probe slots below */
        atomic_compare_exchange_strong(&s->state, &state,
                                       ARK_CIRCUIT_HALF_OPEN);
        state = atomic_load(&s->state);
    }
    if (state == ARK_CIRCUIT_HALF_OPEN) {
        uint32_t p = atomic_load(&s->probes);

        do {
            if (p >= bc->probes) {
                return 0;
            }
        } while (!atomic_compare_exchange_weak(&s->probes, &p, p + 1));
        *probe = 1;
    }
    else if (state == ARK_CIRCUIT_OPEN) {
        return 0;
    }
    atomic_fetch_add(&s->inflight, 1);
    atomic_fetch_add(&s->requests, 1);
    return 1;
}

static void trip(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                 apr_time_t now)
{
    atomic_store(&s->open_until, now + bc->cooldown);
    if (atomic_exchange(&s->state, ARK_CIRCUIT_OPEN) != ARK_CIRCUIT_OPEN) {
        atomic_fetch_add(&s->opens, 1);
    }
}

static ark_sig_point_t *point_current(ark_chan_slot_t *s, apr_time_t now)
{
    int64_t epoch = now / ARK_SIG_SERIES_LEN;
    ark_sig_point_t *pt = &s->series[epoch % ARK_SIG_SERIES];
    int64_t seen = atomic_load(&pt->epoch);

    if (seen != epoch
        && atomic_compare_exchange_strong(&pt->epoch, &seen, epoch)) {
        int i;

        atomic_store(&pt->requests, 0);
        atomic_store(&pt->errors, 0);
        for (i = 0; i < ARK_SIG_LAT_BUCKETS; i++) {
            atomic_store(&pt->total[i], 0);
        }
    }
    return pt;
}

void ark_sig_count_status(ark_chan_slot_t *s, int status)
{
    int k = status >= 200 && status < 300   ? 0
            : status >= 400 && status < 500 ? 1
            : status >= 500 && status < 600 ? 2
            : status > 0                    ? 3
                                            : 4;

    atomic_fetch_add(&s->status[k], 1);
}

void ark_sig_count_usage(ark_chan_slot_t *s, apr_time_t now, long tokens_in,
                         long tokens_out, int64_t spend_nano)
{
    int64_t day = now / apr_time_from_sec(86400), seen;

    atomic_fetch_add(&s->tokens_in, (uint64_t)(tokens_in > 0 ? tokens_in
                                                             : 0));
    atomic_fetch_add(&s->tokens_out, (uint64_t)(tokens_out > 0 ? tokens_out
                                                               : 0));
    atomic_fetch_add(&s->spend_nano, spend_nano);
    seen = atomic_load(&s->spend_day);
    if (seen != day && atomic_compare_exchange_strong(&s->spend_day, &seen,
                                                      day)) {
        atomic_store(&s->spend_today, 0);
    }
    atomic_fetch_add(&s->spend_today, spend_nano);
}

int64_t ark_sig_spend_today(ark_chan_slot_t *s, apr_time_t now)
{
    return atomic_load(&s->spend_day) == now / apr_time_from_sec(86400)
           ? atomic_load(&s->spend_today) : 0;
}

int ark_sig_series(ark_chan_slot_t *s, apr_time_t now, apr_time_t *t,
                   uint32_t *requests, uint32_t *errors, double *p95_ms)
{
    int64_t epoch = now / ARK_SIG_SERIES_LEN, e;
    int n = 0, i;

    for (e = epoch - ARK_SIG_SERIES + 1; e <= epoch; e++, n++) {
        ark_sig_point_t *pt = &s->series[((e % ARK_SIG_SERIES)
                                          + ARK_SIG_SERIES) % ARK_SIG_SERIES];
        uint64_t total = 0, seen = 0;

        t[n] = e * ARK_SIG_SERIES_LEN;
        requests[n] = errors[n] = 0;
        p95_ms[n] = -1.0;
        if (atomic_load(&pt->epoch) != e) {
            continue;
        }
        requests[n] = atomic_load(&pt->requests);
        errors[n] = atomic_load(&pt->errors);
        for (i = 0; i < ARK_SIG_LAT_BUCKETS; i++) {
            total += atomic_load(&pt->total[i]);
        }
        for (i = 0; total && i < ARK_SIG_LAT_BUCKETS; i++) {
            seen += atomic_load(&pt->total[i]);
            if (seen * 100 >= total * 95) {
                p95_ms[n] = ark_sig_bucket_value_us(i) / 1000.0;
                break;
            }
        }
    }
    return n;
}

void ark_sig_release(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                     apr_time_t now, int probe, ark_outcome_t outcome,
                     apr_interval_time_t ttfb, apr_interval_time_t total,
                     apr_interval_time_t retry_after)
{
    ark_sig_win_t *w;

    atomic_fetch_sub(&s->inflight, 1);
    if (probe) {
        atomic_fetch_sub(&s->probes, 1);
    }
    if (retry_after > 0) {
        atomic_store(&s->cool_until, now + retry_after);
    }
    if (outcome == ARK_OUTCOME_NEUTRAL) {
        return;
    }
    {
        ark_sig_point_t *pt = point_current(s, now);

        atomic_fetch_add(&pt->requests, 1);
        if (outcome != ARK_OUTCOME_SUCCESS) {
            atomic_fetch_add(&pt->errors, 1);
        }
        else if (total >= 0) {
            atomic_fetch_add(&pt->total[ark_sig_bucket(total)], 1);
        }
    }
    if (outcome == ARK_OUTCOME_SUCCESS) {
        ark_sig_hist_t *h = hist_current(s, now);

        if (ttfb >= 0) {
            atomic_fetch_add(&h->ttfb[ark_sig_bucket(ttfb)], 1);
            atomic_fetch_add(&s->ttfb_hist[ark_sig_bucket(ttfb)], 1);
            ewma_add(&s->ewma_ttfb, ttfb);
        }
        if (total >= 0) {
            atomic_fetch_add(&h->total[ark_sig_bucket(total)], 1);
            atomic_fetch_add(&s->total_hist[ark_sig_bucket(total)], 1);
            ewma_add(&s->ewma_total, total);
        }
        atomic_store(&s->consec_fail, 0);
        {
            /* a success in the half-open phase closes the circuit, with
             * a fresh window: the failures that opened it would otherwise
             * re-open it at the first failure after closing */
            uint32_t half = ARK_CIRCUIT_HALF_OPEN;

            if (atomic_compare_exchange_strong(&s->state, &half,
                                               ARK_CIRCUIT_CLOSED)) {
                win_clear(s);
            }
        }
        w = win_current(s, bc, now);
        atomic_fetch_add(&w->ok, 1);
        return;
    }

    /* a failure */
    atomic_fetch_add(&s->failures, 1);
    w = win_current(s, bc, now);
    atomic_fetch_add(&w->fail, 1);
    if (probe || atomic_load(&s->state) == ARK_CIRCUIT_HALF_OPEN) {
        trip(s, bc, now);
        return;
    }
    if (atomic_fetch_add(&s->consec_fail, 1) + 1 >= bc->failures) {
        trip(s, bc, now);
        return;
    }
    if (bc->error_ratio < 1.0) {
        unsigned int ok, fail;

        win_sum(s, bc, now, &ok, &fail);
        if (ok + fail >= bc->min_requests
            && (double)fail > bc->error_ratio * (double)(ok + fail)) {
            trip(s, bc, now);
        }
    }
}

void ark_sig_view(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                  apr_time_t now, ark_chan_view_t *v)
{
    uint32_t state = atomic_load(&s->state);
    int64_t open_until = atomic_load(&s->open_until);
    int64_t cool_until = atomic_load(&s->cool_until);
    unsigned int ok, fail;

    memset(v, 0, sizeof(*v));
    v->circuit = (ark_circuit_t)state;
    v->admissible = 1;
    if (state == ARK_CIRCUIT_OPEN && open_until > now) {
        v->admissible = 0;
        v->retry_at = open_until;
    }
    else if (state != ARK_CIRCUIT_CLOSED
             && atomic_load(&s->probes) >= bc->probes) {
        v->admissible = 0;
        v->retry_at = now + apr_time_from_sec(1);
    }
    if (cool_until > now) {
        v->admissible = 0;
        if (cool_until > v->retry_at) {
            v->retry_at = cool_until;
        }
    }
    v->p95_ttfb_ms = p95_ms(s, now, 1);
    v->p95_total_ms = p95_ms(s, now, 0);
    v->ewma_ttfb_ms = (double)atomic_load(&s->ewma_ttfb) / 1000.0;
    v->ewma_total_ms = (double)atomic_load(&s->ewma_total) / 1000.0;
    win_sum(s, bc, now, &ok, &fail);
    v->window_requests = ok + fail;
    v->success_ratio = ok + fail ? (double)ok / (double)(ok + fail) : -1.0;
    v->inflight = atomic_load(&s->inflight);
}
