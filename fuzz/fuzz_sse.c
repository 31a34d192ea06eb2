/* Fuzz target: the incremental SSE parser (mod_ark/ark_sse.h).
 *
 * The input is an upstream byte stream. Its header promises that the
 * parser is a pure function of the bytes, whatever their split: the
 * stream is fed whole, byte by byte, and in pieces whose sizes are drawn
 * from the input itself, to three parsers with the same event bound (a
 * small one, so that the APR_ENOSPC limit is reached too), and the three
 * must deliver the same events (name, data, length) in the same order,
 * end with the same status, and agree on whether an event is pending.
 * An event handed over with its bytes (wire) must be exactly
 * "data: " data "\n\n" there.
 */
#include <stdio.h>
#include <string.h>


#include "ark_sse.h"
#include "fuzz_common.h"

/* Small enough for the fuzzer to exceed with short inputs. */
#define MAX_EVENT 512

/* The events seen, as one transcript: "name\0len:data\n" each. */
typedef struct {
    apr_pool_t *pool;
    char *text;
    apr_size_t len, cap;
    int events;
} transcript_t;

static void add(transcript_t *t, const void *s, apr_size_t n)
{
    if (t->len + n > t->cap) {
        apr_size_t cap = t->cap ? t->cap : 256;
        char *grown;

        while (cap < t->len + n) {
            cap *= 2;
        }
        grown = apr_palloc(t->pool, cap);
        if (t->len) {
            memcpy(grown, t->text, t->len);
        }
        t->text = grown;
        t->cap = cap;
    }
    if (n) {
        memcpy(t->text + t->len, s, n);
    }
    t->len += n;
}

static apr_status_t record(void *ctx, const ark_sse_event_t *ev)
{
    transcript_t *t = ctx;
    char num[32];
    int n;

    FUZZ_CHECK(ev->event != NULL && ev->data != NULL);
    if (ev->wire) {
        /* the event's own bytes: "data: " data LF LF */
        FUZZ_CHECK(!memcmp(ev->wire, "data: ", 6) && ev->wire + 6 == ev->data
                   && !memcmp(ev->data + ev->data_len, "\n\n", 2));
    }
    FUZZ_CHECK(strlen(ev->event) <= MAX_EVENT && ev->data_len < MAX_EVENT);
    n = snprintf(num, sizeof(num), "%lu:", (unsigned long)ev->data_len);
    add(t, ev->event, strlen(ev->event) + 1);
    add(t, num, (apr_size_t)n);
    add(t, ev->data, ev->data_len);
    add(t, "\n", 1);
    t->events++;
    return APR_SUCCESS;
}

typedef struct {
    transcript_t t;
    ark_sse_parser_t *sp;
    apr_status_t rv;
} run_t;

static void run_init(run_t *run, apr_pool_t *p)
{
    memset(run, 0, sizeof(*run));
    run->t.pool = p;
    run->sp = ark_sse_parser_make(p, MAX_EVENT);
}

/* Feeds buf[0, len) in pieces of the sizes given by sizes[] (cycled);
 * pieces of 0 bytes are fed too. */
static void run_feed(run_t *run, const char *buf, apr_size_t len,
                     const uint8_t *sizes, apr_size_t nsizes)
{
    apr_size_t at = 0, k = 0;

    while (at < len || k == 0) {
        apr_size_t n = nsizes ? sizes[k % nsizes] % 17 : len - at;

        if (n > len - at) {
            n = len - at;
        }
        run->rv = ark_sse_feed(run->sp, buf + at, n, record, &run->t);
        k++;
        at += n;
        if (run->rv != APR_SUCCESS) {
            break;
        }
        if (k > 4 * len + 8) {
            /* only empty pieces drawn: finish in one */
            run->rv = ark_sse_feed(run->sp, buf + at, len - at, record,
                                   &run->t);
            break;
        }
    }
    if (run->rv != APR_SUCCESS) {
        /* the error is sticky */
        FUZZ_CHECK(ark_sse_feed(run->sp, "\n\n", 2, record, &run->t)
                   == run->rv);
    }
}

static void same(const run_t *a, const run_t *b)
{
    FUZZ_CHECK(a->rv == b->rv);
    FUZZ_CHECK(a->t.events == b->t.events);
    FUZZ_CHECK(a->t.len == b->t.len);
    FUZZ_CHECK(a->t.len == 0 || !memcmp(a->t.text, b->t.text, a->t.len));
    if (a->rv == APR_SUCCESS) {
        FUZZ_CHECK(!ark_sse_pending(a->sp) == !ark_sse_pending(b->sp));
    }
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    static const uint8_t one = 1;
    const char *buf = (const char *)data;
    run_t whole, bytes, pieces;

    run_init(&whole, p);
    run_init(&bytes, p);
    run_init(&pieces, p);
    run_feed(&whole, buf, size, NULL, 0);
    FUZZ_CHECK(whole.rv == APR_SUCCESS || whole.rv == APR_ENOSPC);
    run_feed(&bytes, buf, size, &one, 1);
    /* the input's own bytes as piece sizes: reproducible, and varied */
    run_feed(&pieces, buf, size, data, size);
    same(&whole, &bytes);
    same(&whole, &pieces);
}
