/* Fuzz target: the stream translators, stream_event and stream_end of
 * every provider type, and the Anthropic front's stream translation
 * (ark_anthropic_stream_feed and ark_anthropic_stream_error).
 *
 * The input is an upstream's event stream, parsed with ark_sse as the
 * gateway parses it and translated as the gateway translates it
 * (ark_handler.c): each event goes to the provider type's stream_event,
 * the scratch pool is cleared after each, stream_end is called when the
 * upstream closed without its end marker, and the first error stops the
 * stream. Every type sees the stream twice: once for an OpenAI client
 * that did not ask for usage, whose events must each be one
 * "data: <JSON object>\n\n" or "data: [DONE]\n\n" frame; once for an
 * Anthropic client, the OpenAI events going through the front, whose
 * frames must each be "event: NAME\ndata: <JSON of type NAME>\n\n", none
 * after message_stop or an error event, and the stream ended by an error
 * event when the translation failed.
 */
#include <string.h>

#include "ark_front_anthropic.h"
#include "ark_provider.h"
#include "ark_sse.h"
#include "fuzz_common.h"
#include "fuzz_provider.h"

/* What the client has seen. */
typedef struct {
    ark_anthropic_stream_t *front;   /* NULL: an OpenAI client */
    int front_ended;                 /* message_stop or error written */
} client_t;

static apr_status_t client_write(void *ctx, const char *buf, apr_size_t len)
{
    client_t *c = ctx;

    fuzz_check_anthropic_frame(buf, len);
    FUZZ_CHECK(!c->front_ended);
    if ((len >= 19 && !memcmp(buf, "event: message_stop", 19))
        || (len >= 12 && !memcmp(buf, "event: error", 12))) {
        c->front_ended = 1;
    }
    return APR_SUCCESS;
}

typedef struct {
    ark_stream_t st;
    client_t client;
    const ark_provider_t *prov;
} run_t;

/* The pipeline's emitter (emit_openai in ark_handler.c). */
static apr_status_t emit_openai(void *ctx, const char *buf, apr_size_t len)
{
    run_t *run = ctx;

    fuzz_check_openai_frame(buf, len);
    if (run->client.front) {
        return ark_anthropic_stream_feed(run->client.front, buf, len);
    }
    return APR_SUCCESS;
}

static apr_status_t on_event(void *ctx, const ark_sse_event_t *ev)
{
    run_t *run = ctx;
    apr_status_t rv;

    FUZZ_CHECK(ev->event && ev->data);
    rv = run->prov->type->stream_event(&run->st, ev);
    apr_pool_clear(run->st.pool);
    return rv;
}

static void run_stream(const ark_provider_t *prov, int front,
                       const char *buf, apr_size_t len, apr_pool_t *p)
{
    ark_sse_parser_t *sse = ark_sse_parser_make(p, 64 * 1024);
    run_t *run = apr_pcalloc(p, sizeof(*run));
    apr_status_t rv;

    run->prov = prov;
    run->st.req = fuzz_chat_req(1);
    run->st.upstream_model = "gpt-4o-2024-08-06";
    run->st.id = "chatcmpl-fuzz0123456789abcdefghij";
    run->st.created = APR_TIME_C(1700000000) * APR_USEC_PER_SEC;
    run->st.client_wants_usage = front;
    run->st.emit = emit_openai;
    run->st.emit_ctx = run;
    run->st.rpool = p;
    apr_pool_create(&run->st.pool, p);
    ark_usage_clear(&run->st.usage);
    if (front) {
        run->client.front = ark_anthropic_stream_make("claude-sonnet-4-5",
                                                      client_write,
                                                      &run->client, p);
    }

    rv = ark_sse_feed(sse, buf, len, on_event, run);
    if (rv == APR_SUCCESS && !run->st.done && prov->type->stream_end) {
        rv = prov->type->stream_end(&run->st);
    }
    if (front && rv == APR_SUCCESS && run->st.done) {
        /* [DONE] reached the front: message_stop was written */
        FUZZ_CHECK(run->client.front_ended);
    }
    if (front && (rv != APR_SUCCESS || !run->st.done)) {
        ark_err_t e;

        ark_err_set(&e, 502, "upstream_error", NULL,
                    "The upstream stream failed.");
        ark_anthropic_stream_error(run->client.front, &e);
        FUZZ_CHECK(run->client.front_ended);
    }
    (void)ark_sse_pending(sse);
}

void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p)
{
    const char *buf = (const char *)data;
    int i;

    for (i = 0; i < FUZZ_NPROVIDERS; i += 2) {
        run_stream(fuzz_provider(i), 0, buf, size, p);
        run_stream(fuzz_provider(i), 1, buf, size, p);
    }
}
