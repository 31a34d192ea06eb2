/* Live per-channel signals shared by all httpd processes of a node.
 *
 * One ark_chan_slot_t per channel lives in a shared memory segment made
 * by the httpd parent (mod_ark.c) and inherited by every child. Workers
 * of any process update a slot with C11 atomics only, never a lock, and
 * the router reads it without I/O:
 *
 *   latency      EWMA (alpha 1/8) and a P95 estimate, separately for time
 *                to first byte and total time. The P95 comes from a
 *                histogram of 64 log-spaced buckets (4 per octave from
 *                250 us, so an estimate is within 19% of the truth) kept
 *                for two alternating periods of ARK_SIG_HIST_PERIOD, so
 *                it reflects the last one to two periods.
 *   reliability  successes and failures in a sliding window of
 *                ARK_SIG_WIN_SLOTS buckets spanning the breaker window.
 *   load         requests in flight.
 *   breaker      closed -> open after `failures` consecutive failures, or
 *                an error ratio above `error_ratio` over at least
 *                `min_requests` in the window; open -> half-open once
 *                `cooldown` has passed, letting `probes` requests through
 *                at a time; half-open -> closed on a probe's success
 *                (the window's counts are cleared then, so the failures
 *                that opened it cannot re-open it at once), back to open
 *                on its failure.
 *   cooling      a 429 with Retry-After keeps the channel out of rotation
 *                until then, without counting against the breaker ratio
 *                more than one failure.
 *
 * Races between processes are benign by design: a bucket rotation may
 * lose a count or two, never corrupt a slot. A slot holds no pointers.
 */
#ifndef ARK_SIGNALS_H
#define ARK_SIGNALS_H

#include <stdatomic.h>
#include <stdint.h>

#include <apr_time.h>

#define ARK_SIG_LAT_BUCKETS 64
#define ARK_SIG_LAT_BASE_US 250          /* upper bound of bucket 0 */
#define ARK_SIG_WIN_SLOTS   10
#define ARK_SIG_HIST_PERIOD apr_time_from_sec(60)

typedef enum {
    ARK_CIRCUIT_CLOSED = 0,
    ARK_CIRCUIT_OPEN = 1,
    ARK_CIRCUIT_HALF_OPEN = 2
} ark_circuit_t;

typedef enum {
    ARK_OUTCOME_SUCCESS = 0,
    ARK_OUTCOME_FAILURE,      /* counts against the channel */
    ARK_OUTCOME_NEUTRAL       /* request-caused error, cancelled hedge */
} ark_outcome_t;

typedef struct ark_breaker_conf_t {
    unsigned int failures;            /* consecutive failures to open */
    double error_ratio;               /* window error ratio to open */
    unsigned int min_requests;        /* ... over at least this many */
    apr_interval_time_t window;       /* sliding window length */
    apr_interval_time_t cooldown;     /* open -> half-open after */
    unsigned int probes;              /* concurrent half-open probes */
} ark_breaker_conf_t;

/* Defaults of the ArkCircuit directive. */
#define ARK_BREAKER_DEFAULTS \
    { 5, 0.5, 10, apr_time_from_sec(60), apr_time_from_sec(30), 1 }

typedef struct ark_sig_win_t {
    _Atomic int64_t epoch;            /* now / slot length */
    _Atomic uint32_t ok;
    _Atomic uint32_t fail;
} ark_sig_win_t;

typedef struct ark_sig_hist_t {
    _Atomic int64_t epoch;            /* now / ARK_SIG_HIST_PERIOD */
    _Atomic uint32_t ttfb[ARK_SIG_LAT_BUCKETS];
    _Atomic uint32_t total[ARK_SIG_LAT_BUCKETS];
} ark_sig_hist_t;

/* Recent history for the status page: ARK_SIG_SERIES intervals of
 * ARK_SIG_SERIES_LEN, a ring indexed by interval number. */
#define ARK_SIG_SERIES     30
#define ARK_SIG_SERIES_LEN apr_time_from_sec(20)

typedef struct ark_sig_point_t {
    _Atomic int64_t epoch;            /* now / ARK_SIG_SERIES_LEN */
    _Atomic uint32_t requests;        /* attempts that ended in it */
    _Atomic uint32_t errors;          /* of which failures */
    _Atomic uint32_t total[ARK_SIG_LAT_BUCKETS];
} ark_sig_point_t;

typedef struct ark_chan_slot_t {
    _Atomic uint32_t inflight;
    _Atomic uint32_t consec_fail;
    _Atomic uint32_t state;           /* ark_circuit_t */
    _Atomic uint32_t probes;          /* half-open probes in flight */
    _Atomic int64_t open_until;       /* apr_time_t */
    _Atomic int64_t cool_until;       /* apr_time_t, from Retry-After */
    _Atomic int64_t ewma_ttfb;        /* microseconds, 0 = no sample */
    _Atomic int64_t ewma_total;
    ark_sig_win_t win[ARK_SIG_WIN_SLOTS];
    ark_sig_hist_t hist[2];
    /* lifetime counters, for metrics */
    _Atomic uint64_t requests;
    _Atomic uint64_t failures;
    _Atomic uint64_t hedges;
    _Atomic uint64_t opens;
    _Atomic uint64_t failovers;       /* failed attempts followed by
                                       * another channel */
    _Atomic uint64_t status[5];       /* attempts by outcome: 2xx, 4xx,
                                       * 5xx, other status, no answer */
    _Atomic uint64_t ttfb_hist[ARK_SIG_LAT_BUCKETS];  /* lifetime */
    _Atomic uint64_t total_hist[ARK_SIG_LAT_BUCKETS];
    _Atomic uint64_t tokens_in, tokens_out;           /* answers it gave */
    _Atomic int64_t spend_nano;                       /* lifetime */
    _Atomic int64_t spend_day;        /* UTC day number of spend_today */
    _Atomic int64_t spend_today;
    ark_sig_point_t series[ARK_SIG_SERIES];
} ark_chan_slot_t;

/* What the router sees of a channel at one instant. */
typedef struct ark_chan_view_t {
    ark_circuit_t circuit;
    int admissible;           /* may take a request now (closed, or a
                               * half-open probe slot is free), not
                               * cooling down */
    apr_time_t retry_at;      /* when an inadmissible channel may be
                               * tried again (0 if unknown) */
    double p95_ttfb_ms;       /* < 0 when no sample yet */
    double p95_total_ms;
    double ewma_ttfb_ms;
    double ewma_total_ms;
    double success_ratio;     /* < 0 when no request in the window */
    unsigned int window_requests;
    unsigned int inflight;
} ark_chan_view_t;

/* Zeroes a slot (all channels start closed and unknown). */
void ark_sig_init(ark_chan_slot_t *s);

/* Tries to admit one request: 1 and *probe set (1 when it is a
 * half-open probe) if admitted, inflight incremented; 0 if the circuit is
 * open, its probe slots are taken, or the channel is cooling down. */
int ark_sig_acquire(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                    apr_time_t now, int *probe);

/* Ends an admitted request: records the outcome and latencies (ttfb or
 * total < 0: not measured), moves the breaker, releases the probe slot.
 * retry_after > 0 marks the channel cooling down until now+retry_after. */
void ark_sig_release(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                     apr_time_t now, int probe, ark_outcome_t outcome,
                     apr_interval_time_t ttfb, apr_interval_time_t total,
                     apr_interval_time_t retry_after);

/* Counts an attempt's upstream status (0: no answer) in s->status. */
void ark_sig_count_status(ark_chan_slot_t *s, int status);

/* Adds the usage and spend of an answer the channel gave. */
void ark_sig_count_usage(ark_chan_slot_t *s, apr_time_t now, long tokens_in,
                         long tokens_out, int64_t spend_nano);

/* Spend of the current UTC day (0 when nothing was spent today). */
int64_t ark_sig_spend_today(ark_chan_slot_t *s, apr_time_t now);

/* Fills points (oldest first, at most ARK_SIG_SERIES) with the recent
 * intervals up to now: requests, errors and the P95 total latency in ms
 * (< 0 when none); returns how many. Intervals with no traffic are
 * included as zeros. */
int ark_sig_series(ark_chan_slot_t *s, apr_time_t now, apr_time_t *t,
                   uint32_t *requests, uint32_t *errors, double *p95_ms);

/* Fills *v from the slot, without changing it. */
void ark_sig_view(ark_chan_slot_t *s, const ark_breaker_conf_t *bc,
                  apr_time_t now, ark_chan_view_t *v);

/* Bucket index of a latency, and the latency a bucket stands for (its
 * geometric middle), both in microseconds. Exposed for tests. */
int ark_sig_bucket(apr_interval_time_t us);
double ark_sig_bucket_value_us(int bucket);

/* Name of a circuit state: "closed", "open", "half-open". */
const char *ark_circuit_name(ark_circuit_t c);

#endif /* ARK_SIGNALS_H */
