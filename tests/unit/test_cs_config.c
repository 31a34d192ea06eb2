/* Unit tests for the ark-cached configuration (cachesvc/cs_config.c):
 * the file format (comments, quoting, CRLF, byte order mark, key
 * normalisation), load errors with file and line, command-line
 * overrides, the typed getters and their sentences, the "unknown key"
 * check with its suggestion, and the network core's keys (defaults,
 * bounds, conflicts, requirepass_file).
 *
 * Every refusal is checked for its sentence: the operator reads these
 * unchanged when ark-cached refuses to start.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cs_common.h"
#include "cs_config.h"
#include "cs_resp.h"

/* Temporary files made by a test, removed by the teardown. */
#define TEST_FILES_MAX 64

static char files[TEST_FILES_MAX][64];
static int nfiles;

/* Bytes allocated before the test: the test must give them all back. */
static size_t mem_before;

static int setup(void **state)
{
    (void)state;
    mem_before = cs_mem_used();
    return 0;
}

static const char *write_file(const char *content)
{
    char *path;
    int fd;

    assert_true(nfiles < TEST_FILES_MAX);
    path = files[nfiles++];

    snprintf(path, sizeof(files[0]), "/tmp/test_cs_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)),
                     (ssize_t)strlen(content));
    close(fd);
    return path;
}

static int teardown(void **state)
{
    (void)state;
    while (nfiles > 0) {
        unlink(files[--nfiles]);
    }
    assert_int_equal(cs_mem_used(), mem_before);
    return 0;
}

/* Loads content; returns the configuration (asserting success). */
static cs_config_t *load(const char *content, const char **path)
{
    char err[CS_CONFIG_ERR_MAX];
    cs_config_t *cfg;
    const char *p = write_file(content);

    cs_config_create(&cfg);
    if (cs_config_load_file(cfg, p, err, sizeof(err)) != CS_OK) {
        print_error("unexpected: %s\n", err);
        fail();
    }
    if (path != NULL) {
        *path = p;
    }
    return cfg;
}

/* Expects loading content to fail with "<file>:<suffix>". */
static void expect_load_error(const char *content, const char *suffix)
{
    char err[CS_CONFIG_ERR_MAX], want[CS_CONFIG_ERR_MAX];
    cs_config_t *cfg;
    const char *p = write_file(content);

    cs_config_create(&cfg);
    assert_int_equal(cs_config_load_file(cfg, p, err, sizeof(err)), CS_ERR);
    snprintf(want, sizeof(want), "%s:%s", p, suffix);
    assert_string_equal(err, want);
    cs_config_free(cfg);
}

/* Expects cs_config_core to fail with "<file>:<suffix>" (or exactly
 * suffix when it starts with "command line" or "default"). */
static void expect_core_error(const char *content, const char *suffix)
{
    char err[CS_CONFIG_ERR_MAX], want[CS_CONFIG_ERR_MAX];
    cs_core_conf_t core;
    const char *p;
    cs_config_t *cfg = load(content, &p);

    assert_int_equal(cs_config_core(cfg, &core, err, sizeof(err)), CS_ERR);
    if (strncmp(suffix, "default", 7) == 0) {
        snprintf(want, sizeof(want), "%s", suffix);
    }
    else {
        snprintf(want, sizeof(want), "%s:%s", p, suffix);
    }
    assert_string_equal(err, want);
    cs_config_free(cfg);
}

/* ---- file format ------------------------------------------------ */

static void test_file_format(void **state)
{
    char err[CS_CONFIG_ERR_MAX];
    const char *v, *k;
    cs_config_t *cfg;
    int i;

    (void)state;
    cfg = load("\xef\xbb\xbf# comment\n"
               "\n"
               "   # indented comment\n"
               "Port 7481\r\n"
               "redis-url   redis://127.0.0.1:6379/0   \n"
               "requirepass \"s3cr#t \\\"x\\\" \\\\\"\n"
               "banner 'two  words'\n"
               "empty \"\"\n"
               "\tembedder_url http://h:1/v1?a=b#frag\n",
               NULL);
    cs_config_get_str(cfg, "port", NULL, &v, err, sizeof(err));
    assert_string_equal(v, "7481");
    cs_config_get_str(cfg, "redis_url", NULL, &v, err, sizeof(err));
    assert_string_equal(v, "redis://127.0.0.1:6379/0");
    cs_config_get_str(cfg, "REQUIREPASS", NULL, &v, err, sizeof(err));
    assert_string_equal(v, "s3cr#t \"x\" \\");
    cs_config_get_str(cfg, "banner", NULL, &v, err, sizeof(err));
    assert_string_equal(v, "two  words");
    cs_config_get_str(cfg, "empty", "dflt", &v, err, sizeof(err));
    assert_string_equal(v, "");
    cs_config_get_str(cfg, "embedder-url", NULL, &v, err, sizeof(err));
    assert_string_equal(v, "http://h:1/v1?a=b#frag");
    cs_config_get_str(cfg, "absent", "dflt", &v, err, sizeof(err));
    assert_string_equal(v, "dflt");
    assert_true(cs_config_has(cfg, "redis-url"));
    assert_false(cs_config_has(cfg, "absent"));
    assert_string_equal(cs_config_where(cfg, "absent"), "default");
    for (i = 0; cs_config_entry(cfg, i, &k, &v) == CS_OK; i++) {
    }
    assert_int_equal(i, 6);
    cs_config_entry(cfg, 0, &k, &v);
    assert_string_equal(k, "port");
    assert_int_equal(cs_config_check_unused(cfg, err, sizeof(err)), CS_OK);
    cs_config_free(cfg);
}

static void test_where_names_line(void **state)
{
    char want[128];
    const char *p;
    cs_config_t *cfg = load("# one\nport 1\n\nbind ::1\n", &p);

    (void)state;
    snprintf(want, sizeof(want), "%s:4", p);
    assert_string_equal(cs_config_where(cfg, "bind"), want);
    cs_config_free(cfg);
}

static void test_load_errors(void **state)
{
    char err[CS_CONFIG_ERR_MAX], longline[CS_CONFIG_LINE_MAX + 64];
    cs_config_t *cfg;

    (void)state;
    expect_load_error("port\n", "1: port has no value");
    expect_load_error("port   \t \n", "1: port has no value");
    expect_load_error("\n\nrequirepass \"abc\n",
                      "3: requirepass has an unterminated quoted value");
    expect_load_error("requirepass 'abc\n",
                      "1: requirepass has an unterminated quoted value");
    expect_load_error("requirepass \"abc\" x\n",
                      "1: requirepass has text after its closing quote");
    expect_load_error("requirepass \"a\\qb\"\n",
                      "1: requirepass has an unknown escape in its quoted "
                      "value");
    expect_load_error("po/rt 1\n", "1: 'po/rt' is not a valid key");
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "key ", 4);
    longline[sizeof(longline) - 2] = '\n';
    longline[sizeof(longline) - 1] = '\0';
    expect_load_error(longline, "1: line longer than 4096 bytes");

    cs_config_create(&cfg);
    assert_int_equal(
        cs_config_load_file(cfg, "/nonexistent/ark.conf", err, sizeof(err)),
        CS_ERR);
    assert_string_equal(err, "cannot open configuration file "
                             "/nonexistent/ark.conf: No such file or "
                             "directory");
    cs_config_free(cfg);
}

/* The duplicate message names both places. */
static void test_duplicate_names_both(void **state)
{
    char err[CS_CONFIG_ERR_MAX], want[CS_CONFIG_ERR_MAX];
    cs_config_t *cfg;
    const char *p = write_file("port 1\n# x\nport 2\n");

    (void)state;
    cs_config_create(&cfg);
    assert_int_equal(cs_config_load_file(cfg, p, err, sizeof(err)), CS_ERR);
    snprintf(want, sizeof(want), "%s:3: port is already set at %s:1", p, p);
    assert_string_equal(err, want);
    cs_config_free(cfg);
}

static void test_overrides(void **state)
{
    char err[CS_CONFIG_ERR_MAX];
    const char *p, *v;
    cs_config_t *cfg;
    long n;

    (void)state;
    /* command line before the file (as main does it: file first, then
     * overrides; both orders must give the command line's value) */
    cfg = load("port 7000\nthreads 2\n", &p);
    assert_int_equal(
        cs_config_set_override(cfg, "port", "7001", err, sizeof(err)), CS_OK);
    assert_int_equal(
        cs_config_set_override(cfg, "max-bulk-len", "1mb", err, sizeof(err)),
        CS_OK);
    assert_int_equal(
        cs_config_get_long(cfg, "port", 0, 0, 65535, &n, err, sizeof(err)),
        CS_OK);
    assert_int_equal(n, 7001);
    assert_string_equal(cs_config_where(cfg, "port"), "command line (--port)");
    cs_config_get_str(cfg, "max_bulk_len", NULL, &v, err, sizeof(err));
    assert_string_equal(v, "1mb");
    /* bad values from the command line say so */
    assert_int_equal(
        cs_config_set_override(cfg, "threads", "many", err, sizeof(err)),
        CS_OK);
    assert_int_equal(
        cs_config_get_long(cfg, "threads", 1, 1, 256, &n, err, sizeof(err)),
        CS_ERR);
    assert_string_equal(err, "command line (--threads): threads: expected "
                             "an integer from 1 to 256, got 'many'");
    assert_int_equal(
        cs_config_set_override(cfg, "bad key", "1", err, sizeof(err)), CS_ERR);
    assert_string_equal(err, "command line: '--bad key' is not a valid key");
    cs_config_free(cfg);

    /* a file loaded after an override keeps the override */
    cs_config_create(&cfg);
    cs_config_set_override(cfg, "port", "9", err, sizeof(err));
    p = write_file("port 7000\n");
    assert_int_equal(cs_config_load_file(cfg, p, err, sizeof(err)), CS_OK);
    cs_config_get_long(cfg, "port", 0, 0, 65535, &n, err, sizeof(err));
    assert_int_equal(n, 9);
    cs_config_free(cfg);
}

/* ---- typed getters ---------------------------------------------- */

static void test_getters(void **state)
{
    static const char *const names[] = {"builtin", "http", NULL};
    char err[CS_CONFIG_ERR_MAX];
    cs_config_t *cfg;
    const char *p;
    double d;
    size_t sz;
    long n;
    int b, e;

    (void)state;
    cfg = load("n 42\nneg -3\nd 0.85\ns1 8mb\ns2 1k\ns3 2GB\ns4 512\n"
               "b1 yes\nb2 NO\ne HTTP\n",
               &p);
    assert_int_equal(
        cs_config_get_long(cfg, "n", 0, 0, 100, &n, err, sizeof(err)), CS_OK);
    assert_int_equal(n, 42);
    assert_int_equal(
        cs_config_get_long(cfg, "neg", 0, -10, 10, &n, err, sizeof(err)),
        CS_OK);
    assert_int_equal(n, -3);
    assert_int_equal(
        cs_config_get_long(cfg, "absent", 7, 0, 10, &n, err, sizeof(err)),
        CS_OK);
    assert_int_equal(n, 7);
    assert_int_equal(
        cs_config_get_double(cfg, "d", 0, 0.01, 1, &d, err, sizeof(err)),
        CS_OK);
    assert_true(d > 0.8499 && d < 0.8501);
    cs_config_get_size(cfg, "s1", 0, 0, SIZE_MAX, &sz, err, sizeof(err));
    assert_int_equal(sz, 8 * 1024 * 1024);
    cs_config_get_size(cfg, "s2", 0, 0, SIZE_MAX, &sz, err, sizeof(err));
    assert_int_equal(sz, 1000);
    cs_config_get_size(cfg, "s3", 0, 0, SIZE_MAX, &sz, err, sizeof(err));
    assert_int_equal(sz, (size_t)2 * 1024 * 1024 * 1024);
    cs_config_get_size(cfg, "s4", 0, 0, SIZE_MAX, &sz, err, sizeof(err));
    assert_int_equal(sz, 512);
    cs_config_get_bool(cfg, "b1", 0, &b, err, sizeof(err));
    assert_int_equal(b, 1);
    cs_config_get_bool(cfg, "b2", 1, &b, err, sizeof(err));
    assert_int_equal(b, 0);
    assert_int_equal(
        cs_config_get_enum(cfg, "e", names, 0, &e, err, sizeof(err)), CS_OK);
    assert_int_equal(e, 1);
    assert_int_equal(cs_config_check_unused(cfg, err, sizeof(err)), CS_OK);
    cs_config_free(cfg);
}

static void expect_getter_error(const char *line, int which, const char *suffix)
{
    static const char *const names[] = {"builtin", "http", NULL};
    char err[CS_CONFIG_ERR_MAX], want[CS_CONFIG_ERR_MAX];
    const char *p;
    cs_config_t *cfg = load(line, &p);
    double d;
    size_t sz;
    long n;
    int b, rc = CS_OK;

    switch (which) {
    case 0:
        rc = cs_config_get_long(cfg, "k", 0, 0, 65535, &n, err, sizeof(err));
        break;
    case 1:
        rc = cs_config_get_double(cfg, "k", 0, 0.01, 1, &d, err, sizeof(err));
        break;
    case 2:
        rc = cs_config_get_size(cfg, "k", 0, 1024, 512 * 1024 * 1024, &sz, err,
                                sizeof(err));
        break;
    case 3:
        rc = cs_config_get_bool(cfg, "k", 0, &b, err, sizeof(err));
        break;
    case 4:
        rc = cs_config_get_enum(cfg, "k", names, 0, &b, err, sizeof(err));
        break;
    }
    assert_int_equal(rc, CS_ERR);
    snprintf(want, sizeof(want), "%s:1: k: %s", p, suffix);
    assert_string_equal(err, want);
    cs_config_free(cfg);
}

static void test_getter_errors(void **state)
{
    (void)state;
    expect_getter_error("k abc\n", 0,
                        "expected an integer from 0 to 65535, got 'abc'");
    expect_getter_error("k 70000\n", 0,
                        "expected an integer from 0 to 65535, got '70000'");
    expect_getter_error("k -1\n", 0,
                        "expected an integer from 0 to 65535, got '-1'");
    expect_getter_error("k 12x\n", 0,
                        "expected an integer from 0 to 65535, got '12x'");
    expect_getter_error("k 99999999999999999999999\n", 0,
                        "expected an integer from 0 to 65535, got "
                        "'99999999999999999999999'");
    expect_getter_error("k 1.5\n", 1,
                        "expected a number from 0.01 to 1, got '1.5'");
    expect_getter_error("k nan\n", 1,
                        "expected a number from 0.01 to 1, got 'nan'");
    expect_getter_error("k high\n", 1,
                        "expected a number from 0.01 to 1, got 'high'");
    expect_getter_error("k 8 mb\n", 2,
                        "expected a size from 1kb to 512mb (units k, kb, m, "
                        "mb, g, gb), got '8 mb'");
    expect_getter_error("k 1tb\n", 2,
                        "expected a size from 1kb to 512mb (units k, kb, m, "
                        "mb, g, gb), got '1tb'");
    expect_getter_error("k 1gb\n", 2,
                        "expected a size from 1kb to 512mb (units k, kb, m, "
                        "mb, g, gb), got '1gb'");
    expect_getter_error("k 10\n", 2,
                        "expected a size from 1kb to 512mb (units k, kb, m, "
                        "mb, g, gb), got '10'");
    expect_getter_error("k -5mb\n", 2,
                        "expected a size from 1kb to 512mb (units k, kb, m, "
                        "mb, g, gb), got '-5mb'");
    expect_getter_error("k 99999999999999999999gb\n", 2,
                        "expected a size from 1kb to 512mb (units k, kb, m, "
                        "mb, g, gb), got '99999999999999999999gb'");
    expect_getter_error("k true\n", 3, "expected yes or no, got 'true'");
    expect_getter_error("k faiss\n", 4,
                        "expected one of builtin, http, got 'faiss'");
}

static void test_config_error_helper(void **state)
{
    char err[CS_CONFIG_ERR_MAX], want[CS_CONFIG_ERR_MAX];
    const char *p;
    cs_config_t *cfg = load("snapshot_dir /nope\n", &p);

    (void)state;
    assert_int_equal(cs_config_error(cfg, "snapshot_dir", err, sizeof(err),
                                     "%s is not a directory", "/nope"),
                     CS_ERR);
    snprintf(want, sizeof(want),
             "%s:1: snapshot_dir: /nope is not a "
             "directory",
             p);
    assert_string_equal(err, want);
    cs_config_error(cfg, "absent", err, sizeof(err), "must be set");
    assert_string_equal(err, "default: absent: must be set");
    cs_config_free(cfg);
}

/* ---- unknown keys ----------------------------------------------- */

static void test_unused_keys(void **state)
{
    char err[CS_CONFIG_ERR_MAX], want[CS_CONFIG_ERR_MAX];
    cs_config_t *cfg, *again;
    const char *p, *v;
    long n;

    (void)state;
    cfg = load("port 1\nprot 2\ntreads 3\nzzzzzz 4\n", &p);
    cs_config_get_long(cfg, "port", 0, 0, 65535, &n, err, sizeof(err));
    cs_config_get_long(cfg, "threads", 1, 1, 256, &n, err, sizeof(err));
    assert_int_equal(cs_config_check_unused(cfg, err, sizeof(err)), CS_ERR);
    snprintf(want, sizeof(want),
             "%s:2: unknown key 'prot' (did you mean 'port'?); and 2 more "
             "unknown keys",
             p);
    assert_string_equal(err, want);
    cs_config_free(cfg);

    /* far from every known key: no suggestion */
    cfg = load("port 1\nzzzzzz 4\n", &p);
    cs_config_get_long(cfg, "port", 0, 0, 65535, &n, err, sizeof(err));
    assert_int_equal(cs_config_check_unused(cfg, err, sizeof(err)), CS_ERR);
    snprintf(want, sizeof(want), "%s:2: unknown key 'zzzzzz'", p);
    assert_string_equal(err, want);

    /* a reload that nobody reads fully: keys known from the first load
     * are not unknown */
    cs_config_create(&again);
    p = write_file("port 5\nzzzzzz 4\nextra 1\n");
    assert_int_equal(cs_config_load_file(again, p, err, sizeof(err)), CS_OK);
    cs_config_get_str(cfg, "zzzzzz", NULL, &v, err, sizeof(err));
    cs_config_inherit_known(again, cfg);
    assert_int_equal(cs_config_check_unused(again, err, sizeof(err)), CS_ERR);
    snprintf(want, sizeof(want), "%s:3: unknown key 'extra'", p);
    assert_string_equal(err, want);
    cs_config_free(again);
    cs_config_free(cfg);

    /* from the command line */
    cs_config_create(&cfg);
    cs_config_set_override(cfg, "metrics-prot", "9100", err, sizeof(err));
    cs_config_get_long(cfg, "metrics_port", 0, 0, 65535, &n, err, sizeof(err));
    assert_int_equal(cs_config_check_unused(cfg, err, sizeof(err)), CS_ERR);
    assert_string_equal(err, "command line (--metrics_prot): unknown key "
                             "'metrics_prot' (did you mean "
                             "'metrics_port'?)");
    cs_config_free(cfg);
}

/* ---- core keys -------------------------------------------------- */

static void test_core_defaults(void **state)
{
    char err[CS_CONFIG_ERR_MAX];
    cs_core_conf_t core;
    cs_config_t *cfg;

    (void)state;
    cs_config_create(&cfg);
    assert_int_equal(cs_config_core(cfg, &core, err, sizeof(err)), CS_OK);
    assert_string_equal(core.bind, "127.0.0.1");
    assert_int_equal(core.port, 7480);
    assert_null(core.unixsocket);
    assert_int_equal(core.unixsocketperm, 0700);
    assert_int_equal(core.threads, cs_config_default_threads());
    assert_true(core.threads >= 1);
    assert_int_equal(core.maxclients, 10000);
    assert_int_equal(core.timeout, 0);
    assert_string_equal(core.requirepass, "");
    assert_int_equal(core.max_bulk_len, CS_RESP_BULK_LEN_DEFAULT);
    assert_int_equal(core.max_query_buffer, 16 * 1024 * 1024);
    assert_int_equal(core.max_output_buffer, 64 * 1024 * 1024);
    assert_int_equal(core.metrics_port, 0);
    assert_int_equal(core.daemonize, 0);
    assert_null(core.pidfile);
    assert_null(core.logfile);
    assert_int_equal(core.loglevel, CS_LOG_NOTICE);
    assert_int_equal(cs_config_check_unused(cfg, err, sizeof(err)), CS_OK);
    cs_config_free(cfg);
}

static void test_core_values(void **state)
{
    char err[CS_CONFIG_ERR_MAX];
    cs_core_conf_t core;
    cs_config_t *cfg;

    (void)state;
    cfg = load("bind ::1\nport 0\nunixsocket /run/ark/cached.sock\n"
               "unixsocketperm 770\nthreads 3\nmaxclients 500\ntimeout 60\n"
               "requirepass hunter2\nmax_bulk_len 1mb\n"
               "max_query_buffer 4mb\nmax_output_buffer 8mb\n"
               "metrics_port 9121\ndaemonize yes\n"
               "pidfile /run/ark/cached.pid\nlogfile \"\"\nloglevel debug\n",
               NULL);
    assert_int_equal(cs_config_core(cfg, &core, err, sizeof(err)), CS_OK);
    assert_string_equal(core.bind, "::1");
    assert_int_equal(core.port, 0);
    assert_string_equal(core.unixsocket, "/run/ark/cached.sock");
    assert_int_equal(core.unixsocketperm, 0770);
    assert_int_equal(core.threads, 3);
    assert_int_equal(core.maxclients, 500);
    assert_int_equal(core.timeout, 60);
    assert_string_equal(core.requirepass, "hunter2");
    assert_int_equal(core.max_bulk_len, 1024 * 1024);
    assert_int_equal(core.max_query_buffer, 4 * 1024 * 1024);
    assert_int_equal(core.max_output_buffer, 8 * 1024 * 1024);
    assert_int_equal(core.metrics_port, 9121);
    assert_int_equal(core.daemonize, 1);
    assert_string_equal(core.pidfile, "/run/ark/cached.pid");
    assert_null(core.logfile);
    assert_int_equal(core.loglevel, CS_LOG_DEBUG);
    assert_int_equal(cs_config_check_unused(cfg, err, sizeof(err)), CS_OK);
    cs_config_core_wipe(&core);
    assert_string_equal(core.requirepass, "");
    cs_config_free(cfg);
}

static void test_core_errors(void **state)
{
    char sock[200], line[300];

    (void)state;
    expect_core_error("port 70000\n", "1: port: expected an integer from 0 "
                                      "to 65535, got '70000'");
    expect_core_error("bind localhost\n",
                      "1: bind: expected an IPv4 or IPv6 address such as "
                      "127.0.0.1, 0.0.0.0 or ::1, got 'localhost'");
    expect_core_error("bind 127.0.0.1 ::1\n",
                      "1: bind: expected an IPv4 or IPv6 address such as "
                      "127.0.0.1, 0.0.0.0 or ::1, got '127.0.0.1 ::1'");
    expect_core_error("port 0\n", "1: port: port is 0 and unixsocket is not "
                                  "set: nothing to listen on");
    memset(sock, 'a', sizeof(sock));
    sock[0] = '/';
    sock[150] = '\0';
    snprintf(line, sizeof(line), "unixsocket %s\n", sock);
    expect_core_error(line, "1: unixsocket: path longer than 107 bytes");
    expect_core_error("unixsocketperm 999\n",
                      "1: unixsocketperm: expected octal permissions such "
                      "as 770, got '999'");
    expect_core_error("unixsocketperm 7777\n",
                      "1: unixsocketperm: expected octal permissions such "
                      "as 770, got '7777'");
    expect_core_error("threads 0\n", "1: threads: expected an integer from 1 "
                                     "to 256, got '0'");
    expect_core_error("maxclients 0\n", "1: maxclients: expected an integer "
                                        "from 1 to 1000000, got '0'");
    expect_core_error("timeout -1\n", "1: timeout: expected an integer from "
                                      "0 to 2147483647, got '-1'");
    expect_core_error("max_bulk_len 10\n",
                      "1: max_bulk_len: expected a size from 1kb to 512mb "
                      "(units k, kb, m, mb, g, gb), got '10'");
    expect_core_error("max_bulk_len 16mb\n",
                      "1: max_bulk_len: must be at least 4096 bytes below "
                      "max_query_buffer (16777216)");
    expect_core_error("max_bulk_len 512mb\nmax_query_buffer 1gb\n",
                      "1: max_bulk_len: must be at least 4096 bytes below "
                      "max_output_buffer (67108864)");
    expect_core_error("max_output_buffer 1mb\nmax_bulk_len 1mb\n",
                      "1: max_output_buffer: must exceed max_bulk_len "
                      "(1048576) by at least 4096 bytes");
    expect_core_error("metrics_port 7480\n",
                      "1: metrics_port: must differ from port (7480)");
    expect_core_error("daemonize true\n",
                      "1: daemonize: expected yes or no, got 'true'");
    expect_core_error("loglevel verbose\n",
                      "1: loglevel: expected one of debug, info, notice, "
                      "warning, got 'verbose'");
}

static void test_requirepass_file(void **state)
{
    char err[CS_CONFIG_ERR_MAX], line[200], want[CS_CONFIG_ERR_MAX];
    cs_core_conf_t core;
    cs_config_t *cfg;
    const char *pw, *p;
    char big[CS_PASS_MAX + 10];

    (void)state;
    pw = write_file("  s3cret with spaces  \r\nsecond line ignored\n");
    snprintf(line, sizeof(line), "requirepass_file %s\n", pw);
    cfg = load(line, NULL);
    assert_int_equal(cs_config_core(cfg, &core, err, sizeof(err)), CS_OK);
    assert_string_equal(core.requirepass, "  s3cret with spaces  ");
    cs_config_core_wipe(&core);
    cs_config_free(cfg);

    /* both ways at once */
    snprintf(line, sizeof(line), "requirepass x\nrequirepass_file %s\n", pw);
    expect_core_error(line, "2: requirepass_file: set either requirepass or "
                            "requirepass_file, not both");

    /* empty file */
    pw = write_file("\n");
    snprintf(line, sizeof(line), "requirepass_file %s\n", pw);
    cfg = load(line, &p);
    assert_int_equal(cs_config_core(cfg, &core, err, sizeof(err)), CS_ERR);
    snprintf(want, sizeof(want),
             "%s:1: requirepass_file: %s is empty (the "
             "password is its first line)",
             p, pw);
    assert_string_equal(err, want);
    cs_config_free(cfg);

    /* too long */
    memset(big, 'p', sizeof(big));
    big[sizeof(big) - 2] = '\n';
    big[sizeof(big) - 1] = '\0';
    pw = write_file(big);
    snprintf(line, sizeof(line), "requirepass_file %s\n", pw);
    cfg = load(line, &p);
    assert_int_equal(cs_config_core(cfg, &core, err, sizeof(err)), CS_ERR);
    snprintf(want, sizeof(want),
             "%s:1: requirepass_file: the password in "
             "%s is longer than 512 bytes",
             p, pw);
    assert_string_equal(err, want);
    cs_config_free(cfg);

    /* missing */
    cfg = load("requirepass_file /nonexistent/pw\n", &p);
    assert_int_equal(cs_config_core(cfg, &core, err, sizeof(err)), CS_ERR);
    snprintf(want, sizeof(want),
             "%s:1: requirepass_file: cannot open "
             "/nonexistent/pw: No such file or "
             "directory",
             p);
    assert_string_equal(err, want);
    cs_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_where_names_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_names_both, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getter_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_error_helper, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unused_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_core_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_core_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_core_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requirepass_file, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
