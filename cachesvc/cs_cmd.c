/* ark-cached: the command table and the commands (see cs_cmd.h).
 *
 * Data flow: cs_cmd_execute() looks argv[0] up in the table, refuses
 * with -NOAUTH when a password is set and the client has not given it
 * (except AUTH, HELLO and QUIT), checks the argument count against the
 * command's allowed counts, then calls its handler. A handler validates
 * its options, calls the cache engine or the server for data, and
 * appends exactly one reply. Errors the client can act on are
 * "-ERR <sentence>"; messages from the engine are passed on as it
 * writes them for clients (cs_cache.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cs_auth.h"
#include "cs_cache.h"
#include "cs_cmd.h"
#include "cs_log.h"

/* Longest numeric argument (THRESHOLD, TTL, id, protocol version). */
#define CS_CMD_NUMBER_MAX 32

/* Longest command name echoed back in "unknown command". */
#define CS_CMD_NAME_ECHO_MAX 64

/* A W3C traceparent (TRACE option): "00-" 32 "-" 16 "-" 2 characters,
 * longer for later versions; anything longer is ignored. */
#define CS_CMD_TRACEPARENT_LEN 55
#define CS_CMD_TRACEPARENT_MAX 512

/* Room for an error sentence from the engine. */
#define CS_CMD_ERR_MAX 256

/* Below 2^53 every integer is exact in a double: such statistic values
 * are shown without decimals. */
#define CS_CMD_EXACT_INT 9007199254740992.0

/* Allowed argument counts (command name included) as a bit set. */
#define ARGC(n) (1ULL << (n))
#define ARGC_FROM(n) (~0ULL << (n))

typedef struct call {
    cs_server_t *srv;
    cs_cmd_client_t *cl;
    const cs_resp_arg_t *argv;
    int argc;
    cs_buf_t *out;
} call_t;

typedef void cmd_fn_t(call_t *c);

typedef struct cmd_def {
    const char *name;        /* lower case, as shown in errors */
    unsigned long long argc; /* ARGC() bits */
    int before_auth;         /* allowed without AUTH */
    cmd_fn_t *fn;
} cmd_def_t;

static const char *const noauth_msg = "NOAUTH Authentication required.";
static const char *const wrongpass_msg =
    "WRONGPASS invalid username-password pair or user is disabled.";
static const char *const syntax_msg = "ERR syntax error";

/* Copies a short argument into a NUL-terminated buffer; CS_ERR if it is
 * empty or too long to be a number. */
static int arg_number_text(const cs_resp_arg_t *a, char *buf)
{
    if (a->len == 0 || a->len >= CS_CMD_NUMBER_MAX) {
        return CS_ERR;
    }
    memcpy(buf, a->ptr, a->len);
    buf[a->len] = '\0';
    return CS_OK;
}

/* Parses a decimal integer (digits only, optional '-') in [min, max]. */
static int arg_long(const cs_resp_arg_t *a, long long min, long long max,
                    long long *out)
{
    char buf[CS_CMD_NUMBER_MAX], *end;
    long long v;

    if (arg_number_text(a, buf) != CS_OK) {
        return CS_ERR;
    }
    if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9'))) {
        return CS_ERR;
    }
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max) {
        return CS_ERR;
    }
    *out = v;
    return CS_OK;
}

static int arg_double(const cs_resp_arg_t *a, double *out)
{
    char buf[CS_CMD_NUMBER_MAX], *end;
    double v;

    if (arg_number_text(a, buf) != CS_OK) {
        return CS_ERR;
    }
    errno = 0;
    v = strtod(buf, &end);
    if (*end != '\0' || errno != 0 || !isfinite(v)) {
        return CS_ERR;
    }
    *out = v;
    return CS_OK;
}

static void reply_engine_error(call_t *c, const char *err)
{
    cs_resp_add_errorf(c->out, "ERR %s",
                       err[0] != '\0' ? err : "cache engine failure");
}

/* ---- Connection commands ---------------------------------------- */

static void cmd_ping(call_t *c)
{
    if (c->argc == 1) {
        cs_buf_append(c->out, "+PONG\r\n", 7);
    }
    else {
        cs_resp_add_bulk(c->out, c->argv[1].ptr, c->argv[1].len);
    }
}

static void cmd_echo(call_t *c)
{
    cs_resp_add_bulk(c->out, c->argv[1].ptr, c->argv[1].len);
}

static void cmd_quit(call_t *c)
{
    cs_resp_add_simple(c->out, "OK");
    c->cl->quit = 1;
}

/* Checks user (NULL: "default") and pass; on success the client is
 * authenticated for the current password. */
static int try_auth(call_t *c, const cs_resp_arg_t *user,
                    const cs_resp_arg_t *pass)
{
    uint64_t gen;

    if (cs_auth_check(cs_server_auth(c->srv), user ? user->ptr : NULL,
                      user ? user->len : 0, pass->ptr, pass->len,
                      &gen) != CS_OK) {
        cs_log(CS_LOG_INFO,
               CS_LOGNO(00060) "client %llu: authentication failed",
               (unsigned long long)c->cl->id);
        return CS_ERR;
    }
    c->cl->auth_gen = gen;
    return CS_OK;
}

static void cmd_auth(call_t *c)
{
    if (!cs_auth_required(cs_server_auth(c->srv))) {
        cs_resp_add_error(c->out,
                          "ERR AUTH <password> called without any password "
                          "configured for the default user. Are you sure "
                          "your configuration is correct?");
        return;
    }
    if (try_auth(c, c->argc == 3 ? &c->argv[1] : NULL, &c->argv[c->argc - 1]) !=
        CS_OK) {
        cs_resp_add_error(c->out, wrongpass_msg);
        return;
    }
    cs_resp_add_simple(c->out, "OK");
}

/* HELLO [protover [AUTH user pass] [SETNAME name]]: RESP2 only. */
static void cmd_hello(call_t *c)
{
    long long ver;
    int i;

    if (c->argc >= 2) {
        if (arg_long(&c->argv[1], 0, 1000000, &ver) != CS_OK) {
            cs_resp_add_error(c->out, "ERR Protocol version is not an "
                                      "integer or out of range");
            return;
        }
        if (ver != 2) {
            cs_resp_add_error(c->out, "NOPROTO unsupported protocol version");
            return;
        }
    }
    for (i = 2; i < c->argc; i++) {
        if (cs_resp_arg_is(&c->argv[i], "auth") && i + 2 < c->argc) {
            if (try_auth(c, &c->argv[i + 1], &c->argv[i + 2]) != CS_OK) {
                cs_resp_add_error(c->out, wrongpass_msg);
                return;
            }
            i += 2;
        }
        else if (cs_resp_arg_is(&c->argv[i], "setname") && i + 1 < c->argc) {
            i += 1; /* names are not kept */
        }
        else {
            cs_resp_add_errorf(c->out,
                               "ERR Syntax error in HELLO option "
                               "'%.*s'",
                               (int)(c->argv[i].len > 64 ? 64 : c->argv[i].len),
                               c->argv[i].ptr);
            return;
        }
    }
    if (!cs_auth_ok(cs_server_auth(c->srv), c->cl->auth_gen)) {
        cs_resp_add_error(c->out,
                          "NOAUTH HELLO must be called with the client "
                          "already authenticated, otherwise the HELLO "
                          "<proto> AUTH <user> <pass> option can be used to "
                          "authenticate the client and select the RESP "
                          "protocol version at the same time");
        return;
    }
    cs_resp_add_array(c->out, 14);
    cs_resp_add_bulk_str(c->out, "server");
    cs_resp_add_bulk_str(c->out, "ark-cached");
    cs_resp_add_bulk_str(c->out, "version");
    cs_resp_add_bulk_str(c->out, CS_VERSION);
    cs_resp_add_bulk_str(c->out, "proto");
    cs_resp_add_integer(c->out, 2);
    cs_resp_add_bulk_str(c->out, "id");
    cs_resp_add_integer(c->out, (long long)c->cl->id);
    cs_resp_add_bulk_str(c->out, "mode");
    cs_resp_add_bulk_str(c->out, "standalone");
    cs_resp_add_bulk_str(c->out, "role");
    cs_resp_add_bulk_str(c->out, "master");
    cs_resp_add_bulk_str(c->out, "modules");
    cs_resp_add_array(c->out, 0);
}

/* redis-cli asks COMMAND DOCS for its hints; we offer none. */
static void cmd_command(call_t *c)
{
    if (c->argc >= 2 && cs_resp_arg_is(&c->argv[1], "count")) {
        cs_resp_add_integer(c->out, 0);
        return;
    }
    cs_resp_add_array(c->out, 0);
}

/* ---- INFO ------------------------------------------------------- */

static int section_wanted(call_t *c, const char *name, size_t len)
{
    int i;

    for (i = 1; i < c->argc; i++) {
        if (c->argv[i].len == len &&
            strncasecmp(c->argv[i].ptr, name, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Keeps the "# Name" sections of text that were asked for. */
static void filter_sections(call_t *c, const cs_buf_t *text, cs_buf_t *out)
{
    const char *p = text->data, *end = text->data + text->len, *nl;
    size_t n, namelen;
    int keep = 0;

    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (n >= 2 && p[0] == '#' && p[1] == ' ') {
            namelen = n - 2;
            while (namelen > 0 &&
                   (p[2 + namelen - 1] == '\n' || p[2 + namelen - 1] == '\r')) {
                namelen--;
            }
            keep = section_wanted(c, p + 2, namelen);
        }
        if (keep) {
            cs_buf_append(out, p, n);
        }
        p += n;
    }
}

static void cmd_info(call_t *c)
{
    cs_buf_t text, filtered;
    int all = c->argc == 1, i;

    for (i = 1; i < c->argc; i++) {
        if (cs_resp_arg_is(&c->argv[i], "all") ||
            cs_resp_arg_is(&c->argv[i], "default") ||
            cs_resp_arg_is(&c->argv[i], "everything")) {
            all = 1;
        }
    }
    cs_buf_init(&text);
    cs_server_info(c->srv, &text);
    if (cs_server_cache(c->srv) != NULL) {
        cs_cache_info(cs_server_cache(c->srv), &text);
    }
    if (all) {
        cs_resp_add_bulk(c->out, text.data, text.len);
    }
    else {
        cs_buf_init(&filtered);
        filter_sections(c, &text, &filtered);
        cs_resp_add_bulk(c->out, filtered.data, filtered.len);
        cs_buf_free(&filtered);
    }
    cs_buf_free(&text);
}

/* ---- ARK.* ------------------------------------------------------ */

static cs_cache_t *cache_or_error(call_t *c)
{
    cs_cache_t *cache = cs_server_cache(c->srv);

    if (cache == NULL) {
        cs_resp_add_error(c->out, "ERR cache not ready");
    }
    return cache;
}

/* Takes the trace id (32 hex digits) out of a W3C traceparent
 * ("00-<trace-id>-<parent-id>-<flags>") into id (33 bytes); CS_ERR if the
 * value is not shaped like one. Only a validated id is ever logged, never
 * the client's bytes. */
static int trace_id_of(const cs_resp_arg_t *a, char *id)
{
    size_t i;

    if (a->len < CS_CMD_TRACEPARENT_LEN || a->len > CS_CMD_TRACEPARENT_MAX
        || a->ptr[2] != '-' || a->ptr[35] != '-' || a->ptr[52] != '-') {
        return CS_ERR;
    }
    for (i = 0; i < 32; i++) {
        char ch = a->ptr[3 + i];

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return CS_ERR;
        }
        id[i] = ch;
    }
    id[32] = '\0';
    return CS_OK;
}

/* Parses the option pairs from argv[first] on: the command's own word
 * (THRESHOLD or TTL, into *value) and TRACE <traceparent> (its trace id
 * into trace, "" if none or malformed: tracing never fails a command).
 * Returns CS_ERR on an unknown or repeated word. */
static int parse_options(call_t *c, int first, const char *word,
                         const cs_resp_arg_t **value, char *trace)
{
    int i, seen_trace = 0;

    *value = NULL;
    trace[0] = '\0';
    for (i = first; i + 1 < c->argc; i += 2) {
        if (cs_resp_arg_is(&c->argv[i], word) && *value == NULL) {
            *value = &c->argv[i + 1];
        }
        else if (cs_resp_arg_is(&c->argv[i], "trace") && !seen_trace) {
            seen_trace = 1;
            if (trace_id_of(&c->argv[i + 1], trace) != CS_OK) {
                trace[0] = '\0';
            }
        }
        else {
            return CS_ERR;
        }
    }
    return i == c->argc ? CS_OK : CS_ERR;
}

/* ARK.LOOKUP ns text [THRESHOLD t] [TRACE traceparent] */
static void cmd_lookup(call_t *c)
{
    char err[CS_CMD_ERR_MAX] = "";
    char trace[33];
    const cs_resp_arg_t *targ;
    cs_cache_t *cache;
    double threshold = -1;
    cs_hit_t hit;
    int found = 0;
    int64_t t0;

    if (parse_options(c, 3, "threshold", &targ, trace) != CS_OK) {
        cs_resp_add_error(c->out, syntax_msg);
        return;
    }
    if (targ != NULL) {
        if (arg_double(targ, &threshold) != CS_OK ||
            !(threshold > 0 && threshold <= 1)) {
            cs_resp_add_error(c->out,
                              "ERR THRESHOLD must be a number in (0,1]");
            return;
        }
    }
    if ((cache = cache_or_error(c)) == NULL) {
        return;
    }
    memset(&hit, 0, sizeof(hit));
    t0 = cs_now_us();
    if (cs_cache_lookup(cache, c->argv[1].ptr, c->argv[1].len, c->argv[2].ptr,
                        c->argv[2].len, threshold, &hit, &found, err,
                        sizeof(err)) != CS_OK) {
        if (trace[0]) {
            cs_log(CS_LOG_DEBUG, CS_LOGNO(00061) "trace %s: ARK.LOOKUP "
                   "failed in %lld us", trace,
                   (long long)(cs_now_us() - t0));
        }
        reply_engine_error(c, err);
        return;
    }
    if (trace[0]) {
        cs_log(CS_LOG_DEBUG, CS_LOGNO(00061) "trace %s: ARK.LOOKUP %s "
               "(similarity %.4f) in %lld us", trace, found ? "hit" : "miss",
               found ? hit.similarity : 0.0, (long long)(cs_now_us() - t0));
    }
    if (!found) {
        cs_resp_add_nil(c->out);
        return;
    }
    cs_resp_add_array(c->out, 3);
    cs_resp_add_bulk(c->out, hit.payload, hit.payload_len);
    cs_resp_add_double(c->out, hit.similarity, 4);
    cs_resp_add_integer(c->out, (long long)hit.id);
    cs_free(hit.payload);
}

/* ARK.STORE ns text payload [TTL s] [TRACE traceparent] */
static void cmd_store(call_t *c)
{
    char err[CS_CMD_ERR_MAX] = "";
    char trace[33];
    const cs_resp_arg_t *targ;
    cs_cache_t *cache;
    long long ttl = 0;
    uint64_t id = 0;
    int64_t t0;

    if (parse_options(c, 4, "ttl", &targ, trace) != CS_OK) {
        cs_resp_add_error(c->out, syntax_msg);
        return;
    }
    if (targ != NULL) {
        if (arg_long(targ, 1, 0x7fffffffL, &ttl) != CS_OK) {
            cs_resp_add_error(c->out,
                              "ERR TTL must be a positive integer (seconds)");
            return;
        }
    }
    if ((cache = cache_or_error(c)) == NULL) {
        return;
    }
    t0 = cs_now_us();
    if (cs_cache_store(cache, c->argv[1].ptr, c->argv[1].len, c->argv[2].ptr,
                       c->argv[2].len, c->argv[3].ptr, c->argv[3].len,
                       (long)ttl, &id, err, sizeof(err)) != CS_OK) {
        if (trace[0]) {
            cs_log(CS_LOG_DEBUG, CS_LOGNO(00062) "trace %s: ARK.STORE "
                   "failed in %lld us", trace,
                   (long long)(cs_now_us() - t0));
        }
        reply_engine_error(c, err);
        return;
    }
    if (trace[0]) {
        cs_log(CS_LOG_DEBUG, CS_LOGNO(00062) "trace %s: ARK.STORE entry "
               "%llu in %lld us", trace, (unsigned long long)id,
               (long long)(cs_now_us() - t0));
    }
    cs_resp_add_integer(c->out, (long long)id);
}

/* ARK.FORGET ns [id] */
static void cmd_forget(call_t *c)
{
    char err[CS_CMD_ERR_MAX] = "";
    cs_cache_t *cache;
    long long v = 0;
    uint64_t id;
    long removed = 0;

    if (c->argc == 3 &&
        arg_long(&c->argv[2], 0, 0x7fffffffffffffffLL, &v) != CS_OK) {
        cs_resp_add_error(c->out, "ERR id must be a non-negative integer");
        return;
    }
    if ((cache = cache_or_error(c)) == NULL) {
        return;
    }
    id = (uint64_t)v;
    if (cs_cache_forget(cache, c->argv[1].ptr, c->argv[1].len,
                        c->argc == 3 ? &id : NULL, &removed, err,
                        sizeof(err)) != CS_OK) {
        reply_engine_error(c, err);
        return;
    }
    cs_resp_add_integer(c->out, removed);
}

/* ARK.STATS: name, value, name, value... (values as bulk strings). */
static void cmd_stats(call_t *c)
{
    cs_stat_t stats[CS_CMD_STATS_MAX];
    cs_cache_t *cache;
    char num[64];
    int n = 0, i;
    double v;

    if ((cache = cache_or_error(c)) == NULL) {
        return;
    }
    cs_cache_stats(cache, stats, CS_CMD_STATS_MAX, &n);
    if (n < 0) {
        n = 0;
    }
    if (n > CS_CMD_STATS_MAX) {
        n = CS_CMD_STATS_MAX;
    }
    cs_resp_add_array(c->out, (size_t)n * 2);
    for (i = 0; i < n; i++) {
        v = stats[i].value;
        if (v > -CS_CMD_EXACT_INT && v < CS_CMD_EXACT_INT &&
            v == (double)(long long)v) {
            snprintf(num, sizeof(num), "%.0f", v); /* counters */
        }
        else {
            snprintf(num, sizeof(num), "%.6g", v); /* ratios, means */
        }
        cs_resp_add_bulk_str(c->out, stats[i].name);
        cs_resp_add_bulk_str(c->out, num);
    }
}

static const cmd_def_t commands[] = {
    {"ping", ARGC(1) | ARGC(2), 0, cmd_ping},
    {"ark.lookup", ARGC(3) | ARGC(5) | ARGC(7), 0, cmd_lookup},
    {"ark.store", ARGC(4) | ARGC(6) | ARGC(8), 0, cmd_store},
    {"ark.forget", ARGC(2) | ARGC(3), 0, cmd_forget},
    {"ark.stats", ARGC(1), 0, cmd_stats},
    {"echo", ARGC(2), 0, cmd_echo},
    {"auth", ARGC(2) | ARGC(3), 1, cmd_auth},
    {"hello", ARGC_FROM(1), 1, cmd_hello},
    {"quit", ARGC_FROM(1), 1, cmd_quit},
    {"info", ARGC_FROM(1), 0, cmd_info},
    {"command", ARGC_FROM(1), 0, cmd_command},
};

static const cmd_def_t *find_command(const cs_resp_arg_t *name)
{
    size_t i;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (cs_resp_arg_is(name, commands[i].name)) {
            return &commands[i];
        }
    }
    return NULL;
}

/* "unknown command 'x'" with x shortened and made printable. */
static void reply_unknown(cs_buf_t *out, const cs_resp_arg_t *name)
{
    char shown[CS_CMD_NAME_ECHO_MAX + 1];
    size_t i,
        n = name->len < CS_CMD_NAME_ECHO_MAX ? name->len : CS_CMD_NAME_ECHO_MAX;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name->ptr[i];

        shown[i] = ch >= 0x20 && ch < 0x7f && ch != '\'' ? (char)ch : '?';
    }
    shown[n] = '\0';
    cs_resp_add_errorf(out, "ERR unknown command '%s'", shown);
}

void cs_cmd_execute(cs_server_t *srv, cs_cmd_client_t *cl,
                    const cs_resp_cmd_t *cmd, cs_buf_t *out)
{
    const cmd_def_t *def = find_command(&cmd->argv[0]);
    call_t call;

    if ((def == NULL || !def->before_auth) &&
        !cs_auth_ok(cs_server_auth(srv), cl->auth_gen)) {
        cs_resp_add_error(out, noauth_msg);
        return;
    }
    if (def == NULL) {
        reply_unknown(out, &cmd->argv[0]);
        return;
    }
    if (cmd->argc >= 64 || !(def->argc & ARGC(cmd->argc))) {
        cs_resp_add_errorf(
            out, "ERR wrong number of arguments for '%s' command", def->name);
        return;
    }
    call.srv = srv;
    call.cl = cl;
    call.argv = cmd->argv;
    call.argc = cmd->argc;
    call.out = out;
    def->fn(&call);
}
