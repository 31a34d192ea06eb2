/* Helpers shared by the cmocka unit tests in tests/unit/.
 *
 * One copy of what several test files need, so that a test file holds
 * only its cases:
 *   running      a pool per test (a child of one root pool) and a main()
 *                that sets APR up around cmocka_run_group_tests
 *   files, JSON  fixture files read whole, JSON parsed with duplicate keys
 *                refused, documents compared with both shown on failure,
 *                the sorted case directories under tests/cases
 *   providers    an ark_provider_t of a given type, options checked as
 *                the configuration checks them, request parsing, and the
 *                table-driven checks every provider type shares
 *                (malformed answers and events refused, error mapping)
 *   streams      a recording client standing in for the browser, an
 *                ark_stream_t wired to it, and upstream bytes fed through
 *                ark_sse whole, byte by byte, in steps, in random pieces
 *                (fixed seed) or at given offsets
 *
 * Failures are reported with cmocka's assertions from inside the helpers,
 * so each message names what was being checked (a case name, a body).
 * Everything allocated comes from the pool passed in; jansson documents
 * are new references unless a function says it hands them to a pool.
 */
#ifndef ARK_TESTUTIL_H
#define ARK_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <jansson.h>

#include "ark_provider.h"
#include "ark_request.h"
#include "ark_sse.h"

/* ------------------------------------------------------------ running */

/* cmocka setup: a fresh pool, a child of the root pool, in *state. */
int ark_test_pool_setup(void **state);

/* cmocka teardown: destroys the pool ark_test_pool_setup made. */
int ark_test_pool_teardown(void **state);

/* The pool every test pool descends from, for helpers that want a pool
 * of their own for a while. Valid while ark_test_run_group runs. */
apr_pool_t *ark_test_root_pool(void);

/* The body of a test program's main(): initializes APR, creates the root
 * pool, runs the count tests as the group name, and cleans up. Returns
 * the number of failed tests (cmocka's exit status), or 1 if APR could
 * not be initialized. */
int ark_test_run_group(const char *name, const struct CMUnitTest *tests,
                       size_t count);

/* A test run with a pool of its own as its state. */
#define ARK_TEST(f) \
    cmocka_unit_test_setup_teardown(f, ark_test_pool_setup, \
                                    ark_test_pool_teardown)

/* ark_test_run_group for an array of tests. */
#define ARK_TEST_RUN(name, tests) \
    ark_test_run_group((name), (tests), sizeof(tests) / sizeof((tests)[0]))

/* ----------------------------------------------------- files and JSON */

/* The whole file at path, NUL-terminated, from p, its length in *plen
 * (if plen is not NULL); NULL if the file cannot be opened. A file that
 * opens but cannot be read fails the test. */
char *ark_test_file_read(const char *path, apr_size_t *plen, apr_pool_t *p);

/* dir/file read as by ark_test_file_read; a missing fixture fails the
 * test. */
char *ark_test_fixture_read(const char *dir, const char *file,
                            apr_size_t *plen, apr_pool_t *p);

/* Parses len bytes of text as JSON with duplicate keys refused, plus the
 * jansson decoding flags given (e.g. JSON_ALLOW_NUL); text that is not
 * JSON fails the test, naming what. With owner set, the document is
 * released with that pool (borrowed by the caller); with owner NULL, it
 * is a new reference the caller releases. */
json_t *ark_test_json_parse(const char *text, apr_size_t len, size_t flags,
                            const char *what, apr_pool_t *owner);

/* The JSON fixture dir/file parsed as by ark_test_json_parse; a new
 * reference. */
json_t *ark_test_fixture_json(const char *dir, const char *file,
                              size_t flags, apr_pool_t *p);

/* j indented for a failure message, from p; "(null)" if it cannot be
 * dumped. */
const char *ark_test_json_pretty(const json_t *j, apr_pool_t *p);

/* Fails the test, showing both documents, unless got and want are equal
 * as JSON (json_equal: object key order does not matter). */
void ark_test_assert_json_equal(const json_t *got, const json_t *want,
                                const char *what, apr_pool_t *p);

/* The names of the directories in dir that start with prefix and with
 * none of the NULL-terminated exclude prefixes (exclude may be NULL), as
 * an array of const char * sorted by strcmp. A dir that cannot be opened
 * fails the test. */
apr_array_header_t *ark_test_case_dirs(const char *dir, const char *prefix,
                                       const char *const *exclude,
                                       apr_pool_t *p);

/* A new temporary file holding the len bytes of content, removed when p
 * is destroyed (removing it earlier is fine); returns its path. */
const char *ark_test_temp_file(const char *content, apr_size_t len,
                               apr_pool_t *p);

/* ---------------------------------------------------------- providers */

/* A provider of the given type, named name, at base_url. With a secret,
 * secret_source says it came from the environment; without one the
 * provider is keyless (a local upstream). */
ark_provider_t *ark_test_provider_make(const ark_provider_type_t *type,
                                       const char *name,
                                       const char *base_url,
                                       const char *secret, apr_pool_t *p);

/* Sets the ArkProvider option name=value on prov after checking it with
 * its type's check_option, as the configuration does; a refusal fails
 * the test. */
void ark_test_provider_option(ark_provider_t *prov, const char *name,
                              const char *value, apr_pool_t *p);

/* Applies the options of a golden case's channel.json at path
 * ({"options": {"name": "value", ...}}) with ark_test_provider_option;
 * nothing if there is no such file. Every value must be a string. */
void ark_test_provider_options_file(ark_provider_t *prov, const char *path,
                                    apr_pool_t *p);

/* Parses a chat request body that must be valid. */
void ark_test_chat_parse(ark_req_t *req, const char *body, apr_size_t len,
                         apr_pool_t *p);

/* Header i ("Name: value") of an upstream request. */
const char *ark_test_header_at(const ark_upstream_req_t *up, int i);

/* Runs type's parse_response on the len bytes at body (the bytes after
 * them are not part of the answer), which it must accept: the answer for
 * the client in *pout and *plen, the usage (cleared first) in *u. */
void ark_test_parse_ok(const ark_provider_type_t *type, const char *body,
                       apr_size_t len, const char **pout, apr_size_t *plen,
                       ark_usage_t *u, apr_pool_t *p);

/* Checks that type's parse_response refuses with APR_EINVAL what no
 * answer can be (an empty body, text that is not JSON, an HTML error
 * page, [], null and {}) and then each of the n bodies; with
 * usage_unknown, also that the usage it was given (cleared first) is
 * still unknown afterwards. */
void ark_test_parse_refuses(const ark_provider_type_t *type,
                            const char *const *bodies, apr_size_t n,
                            int usage_unknown, apr_pool_t *p);

/* One upstream error and what the client must be told about it. */
typedef struct {
    int upstream;                    /* the upstream's HTTP status */
    const char *body;                /* its body; NULL: none */
    int status;                      /* the client's status ... */
    const char *type;                /* ... and error type, code, message */
    const char *code;
    const char *message;
    apr_interval_time_t retry_after; /* the Retry-After to send; 0: none */
} ark_test_map_case_t;

/* Runs prov's map_error on each of the n cases (on an ark_err_t filled
 * with garbage first) and checks status, type, code, message, a NULL
 * param and retry_after; and that the client's error body holds neither
 * prov->secret nor leak (a piece of the provider's key format, such as
 * "sk-proj"). */
void ark_test_map_errors(const ark_provider_t *prov,
                         const ark_test_map_case_t *cases, apr_size_t n,
                         const char *leak, apr_pool_t *p);

/* ------------------------------------------------------------ streams */

/* What the recording client checks of each buffer it is given. */
typedef enum {
    ARK_TEST_FRAME_ANY,     /* anything: only that len is the exact length
                             * (no NUL inside) */
    ARK_TEST_FRAME_DATA,    /* one "data: <payload>\n\n" event, the payload
                             * not empty (OpenAI chunks) */
    ARK_TEST_FRAME_EVENT    /* one "event: NAME\ndata: JSON\n\n" event whose
                             * compact JSON object has "type": NAME
                             * (Anthropic events); recorded in `events` */
} ark_test_frame_t;

/* The client a translator emits to: records every buffer, or refuses
 * them all with fail_with (the client went away). */
typedef struct {
    apr_pool_t *pool;
    ark_test_frame_t frame;
    apr_array_header_t *out;    /* const char *, one per accepted emit */
    const char *all;            /* everything accepted, concatenated */
    json_t *events;             /* ARK_TEST_FRAME_EVENT only (else NULL):
                                 * [{"event": NAME, "data": {...}}], owned
                                 * by the test, which decrefs it */
    int calls;                  /* emit calls, refused ones included */
    apr_status_t fail_with;     /* non-zero: returned by every emit */
    const ark_provider_type_t *type;  /* set by ark_test_stream_init */
} ark_test_client_t;

/* Empties c and sets it up to check frames as frame says, allocating
 * from p. */
void ark_test_client_init(ark_test_client_t *c, ark_test_frame_t frame,
                          apr_pool_t *p);

/* The emitter (ark_emit_fn) for a client given as ctx: checks buf as the
 * client's frame says and records it, or returns fail_with. */
apr_status_t ark_test_client_emit(void *ctx, const char *buf, apr_size_t len);

/* What a test file's streams have in common. */
typedef struct {
    const ark_provider_type_t *type;   /* the translator under test */
    const char *model;                 /* st->upstream_model */
    const char *id;                    /* st->id for built chunks */
    apr_time_t created;                /* st->created */
    ark_test_frame_t frame;            /* what the client checks */
} ark_test_stream_conf_t;

/* Sets up st as the gateway does for a new stream translated by
 * conf->type and emitting to c (initialized here): usage unknown,
 * rpool a new child of p, pool a scratch child of rpool. */
void ark_test_stream_init(ark_stream_t *st, ark_test_client_t *c,
                          const ark_test_stream_conf_t *conf,
                          int wants_usage, apr_pool_t *p);

/* The ark_sse callback for a stream set up by ark_test_stream_init (ctx
 * is the ark_stream_t): translates ev with the stream's type, then clears
 * st->pool as the gateway does after every event. */
apr_status_t ark_test_stream_event(void *ctx, const ark_sse_event_t *ev);

/* One unnamed event carrying data (a NUL-terminated string) handed to
 * the stream's translator, without going through the SSE parser. */
apr_status_t ark_test_stream_data(ark_stream_t *st, const char *data);

/* Checks that each of the n event payloads is refused with APR_EINVAL by
 * a fresh stream (which wants usage) and that nothing was emitted,
 * counted or finished. */
void ark_test_stream_refuses(const ark_test_stream_conf_t *conf,
                             const char *const *events, apr_size_t n,
                             apr_pool_t *p);

/* How ark_test_sse_feed cuts a stream into pieces. */
typedef enum {
    ARK_TEST_SPLIT_WHOLE,     /* one piece */
    ARK_TEST_SPLIT_BYTES,     /* one byte at a time */
    ARK_TEST_SPLIT_RANDOM,    /* pieces of 1 to `size` bytes, drawn with
                               * ark_test_rand from *seed */
    ARK_TEST_SPLIT_STEP,      /* pieces of `size` bytes, the last shorter */
    ARK_TEST_SPLIT_CUTS       /* cut at the n_cuts ascending offsets in
                               * cuts (empty pieces included) */
} ark_test_split_mode_t;

typedef struct {
    ark_test_split_mode_t mode;
    apr_size_t size;            /* STEP, RANDOM */
    apr_uint32_t *seed;         /* RANDOM: advanced as pieces are drawn */
    const apr_size_t *cuts;     /* CUTS */
    int n_cuts;                 /* CUTS */
} ark_test_split_t;

/* Feeds the len bytes at s to the parser sp in the pieces split says,
 * with cb and ctx. Returns the first status other than APR_SUCCESS
 * (nothing more is fed after it), else APR_SUCCESS. */
apr_status_t ark_test_sse_feed(ark_sse_parser_t *sp, const char *s,
                               apr_size_t len, const ark_test_split_t *split,
                               ark_sse_cb *cb, void *ctx);

/* A small deterministic generator (xorshift32), so that random splits
 * are the same on every platform and a failure can be replayed: the
 * next value from *state, which must not be 0. */
apr_uint32_t ark_test_rand(apr_uint32_t *state);

#endif /* ARK_TESTUTIL_H */
