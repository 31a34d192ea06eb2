/* ark-cached: the program. Parses the command line, loads and checks the
 * configuration, opens the log, refuses to start twice (pidfile, Unix
 * socket), binds the listeners, daemonizes when asked, starts the cache
 * engine and the I/O threads, then waits for signals on the main thread:
 *
 *   SIGHUP           reopen the log, re-read the configuration, apply
 *                    loglevel, requirepass and timeout, log what changed
 *                    (other keys need a restart: logged as such), then
 *                    let the engine reopen its own files
 *   SIGTERM, SIGINT  stop accepting, flush pending replies (bounded by
 *                    CS_SHUTDOWN_GRACE_MS), stop the engine, remove the
 *                    pidfile and the Unix socket, exit 0
 *   SIGPIPE          ignored (a vanished client is a write error)
 *
 * The three signals are blocked in every thread (the mask is set before
 * any thread exists) and taken with sigwaitinfo() here, so no code runs
 * in signal context. Exit status: 0 after a clean stop, 1 when start-up
 * fails, 2 for a command line error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs_common.h"
#include "cs_config.h"
#include "cs_engine.h"
#include "cs_log.h"
#include "cs_server.h"

/* Most "--key value" overrides on one command line. */
#define CS_MAIN_OVERRIDES_MAX 128

/* Room for one start-up error sentence. */
#define CS_MAIN_ERR_MAX 1024

typedef struct override {
    char *key;
    const char *value; /* borrowed from argv */
} override_t;

typedef struct daemon_state {
    const char *config_path; /* -c, or NULL */
    override_t overrides[CS_MAIN_OVERRIDES_MAX];
    int noverrides;
    cs_config_t *cfg; /* the start-up configuration */
    cs_core_conf_t core;
    cs_server_t *srv;
    cs_cache_t *cache;
    int notify_fd; /* daemonize: tells the parent "ready" */
    int tty_fd;    /* original stderr, while starting */
    int pidfile_written;
} daemon_state_t;

static void usage(FILE *f)
{
    fprintf(f, "Usage: ark-cached [-c FILE] [-d] [--key value ...]\n"
               "       ark-cached -h | -v\n"
               "\n"
               "  -c FILE        configuration file (key value lines)\n"
               "  -d             daemonize (same as --daemonize yes)\n"
               "  --key value    set any configuration key, overriding the "
               "file\n"
               "  --key=value    same\n"
               "  -h, --help     this text\n"
               "  -v, --version  print the version\n"
               "\n"
               "Signals: SIGHUP reloads (loglevel, requirepass, timeout) and "
               "reopens the log;\nSIGTERM or SIGINT stops gracefully. See "
               "docs/ark-cached.md.\n");
}

/* A start-up failure: to the log, and to the terminal too when the log
 * is a file. */
static void fatal(daemon_state_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fatal(daemon_state_t *st, const char *fmt, ...)
{
    char msg[CS_MAIN_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cs_log(CS_LOG_CRIT, "%s", msg);
    if (st->tty_fd >= 0) {
        dprintf(st->tty_fd, "ark-cached: %s\n", msg);
    }
}

static int parse_args(daemon_state_t *st, int argc, char **argv)
{
    const char *arg, *eq;
    override_t *o;
    int i;

    for (i = 1; i < argc; i++) {
        arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "-v") == 0 || strcmp(arg, "--version") == 0) {
            printf("ark-cached %s\n", CS_VERSION);
            exit(0);
        }
        if (st->noverrides == CS_MAIN_OVERRIDES_MAX) {
            fprintf(stderr, "ark-cached: more than %d options\n",
                    CS_MAIN_OVERRIDES_MAX);
            return CS_ERR;
        }
        o = &st->overrides[st->noverrides];
        if (strcmp(arg, "-c") == 0 && i + 1 < argc) {
            st->config_path = argv[++i];
            continue;
        }
        if (strcmp(arg, "-d") == 0) {
            o->key = cs_strndup("daemonize", 9);
            o->value = "yes";
            st->noverrides++;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            fprintf(stderr, "ark-cached: unexpected argument '%s'\n", arg);
            return CS_ERR;
        }
        arg += 2;
        eq = strchr(arg, '=');
        if (eq != NULL) {
            o->key = cs_strndup(arg, (size_t)(eq - arg));
            o->value = eq + 1;
        }
        else if (i + 1 < argc) {
            o->key = cs_strndup(arg, strlen(arg));
            o->value = argv[++i];
        }
        else {
            fprintf(stderr, "ark-cached: --%s needs a value\n", arg);
            return CS_ERR;
        }
        st->noverrides++;
    }
    return CS_OK;
}

/* Builds a configuration: the file, then the command line. */
static int load_config(const daemon_state_t *st, cs_config_t **pcfg, char *err,
                       size_t errlen)
{
    cs_config_t *cfg;
    int i;

    cs_config_create(&cfg);
    if (st->config_path != NULL &&
        cs_config_load_file(cfg, st->config_path, err, errlen) != CS_OK) {
        cs_config_free(cfg);
        return CS_ERR;
    }
    for (i = 0; i < st->noverrides; i++) {
        if (cs_config_set_override(cfg, st->overrides[i].key,
                                   st->overrides[i].value, err,
                                   errlen) != CS_OK) {
            cs_config_free(cfg);
            return CS_ERR;
        }
    }
    *pcfg = cfg;
    return CS_OK;
}

/* ---- pidfile ---------------------------------------------------- */

static long read_pidfile(const char *path)
{
    char buf[32];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* CS_ERR when the pidfile names a live process (other than us). */
static int check_pidfile(const char *path, char *err, size_t errlen)
{
    long pid = read_pidfile(path);

    if (pid > 0 && pid != (long)getpid() &&
        (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
        snprintf(err, errlen,
                 "pidfile %s names process %ld, which is running: is "
                 "ark-cached already started?",
                 path, pid);
        return CS_ERR;
    }
    return CS_OK;
}

static int write_pidfile(const char *path, char *err, size_t errlen)
{
    char buf[32];
    int fd, n;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write pidfile %s: %s", path,
                 strerror(errno));
        return CS_ERR;
    }
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (write(fd, buf, (size_t)n) != n) {
        snprintf(err, errlen, "cannot write pidfile %s: %s", path,
                 strerror(errno));
        close(fd);
        return CS_ERR;
    }
    close(fd);
    return CS_OK;
}

static void remove_pidfile(const daemon_state_t *st)
{
    if (st->pidfile_written && st->core.pidfile != NULL &&
        read_pidfile(st->core.pidfile) == (long)getpid()) {
        unlink(st->core.pidfile);
    }
}

/* ---- daemonize -------------------------------------------------- */

/* Forks; the parent waits until the child reports "ready" (exit 0) or
 * dies or gives up (exit 1), so the shell sees whether start-up
 * worked. The child starts a new session and returns. */
static int daemon_begin(daemon_state_t *st, char *err, size_t errlen)
{
    int p[2];
    pid_t pid;
    char c;
    ssize_t n;

    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return CS_ERR;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return CS_ERR;
    }
    if (pid > 0) {
        close(p[1]);
        do {
            n = read(p[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        _exit(n == 1 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    st->notify_fd = p[1];
    return CS_OK;
}

/* Detaches the standard descriptors and releases the waiting parent. */
static void daemon_ready(daemon_state_t *st)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (st->core.logfile == NULL) {
            dup2(fd, STDERR_FILENO); /* logging to stderr: discarded */
        }
        close(fd);
    }
    if (write(st->notify_fd, "1", 1) != 1) {
        cs_log(CS_LOG_WARNING,
               CS_LOGNO(00002) "could not notify the parent process: %s",
               strerror(errno));
    }
    close(st->notify_fd);
    st->notify_fd = -1;
}

/* ---- SIGHUP ----------------------------------------------------- */

/* Whether key has the same value (or is absent) in both. */
static int same_value(const cs_config_t *a, const cs_config_t *b,
                      const char *key)
{
    const char *k, *va = NULL, *vb = NULL;
    const char *v;
    int i;

    for (i = 0; cs_config_entry(a, i, &k, &v) == CS_OK; i++) {
        if (strcmp(k, key) == 0) {
            va = v;
        }
    }
    for (i = 0; cs_config_entry(b, i, &k, &v) == CS_OK; i++) {
        if (strcmp(k, key) == 0) {
            vb = v;
        }
    }
    if (va == NULL || vb == NULL) {
        return va == vb;
    }
    return strcmp(va, vb) == 0;
}

static int is_live_key(const char *key)
{
    return strcmp(key, "loglevel") == 0 || strcmp(key, "requirepass") == 0 ||
           strcmp(key, "requirepass_file") == 0 || strcmp(key, "timeout") == 0;
}

/* Logs keys whose value differs between the running and the new
 * configuration but that only a restart applies. */
static void log_restart_keys(const cs_config_t *running,
                             const cs_config_t *fresh)
{
    const char *k, *v;
    int i;

    for (i = 0; cs_config_entry(fresh, i, &k, &v) == CS_OK; i++) {
        if (!is_live_key(k) && !same_value(running, fresh, k)) {
            cs_log(CS_LOG_NOTICE,
                   CS_LOGNO(00020) "reload: %s changed; it takes effect at "
                                   "the next restart",
                   k);
        }
    }
    for (i = 0; cs_config_entry(running, i, &k, &v) == CS_OK; i++) {
        if (!is_live_key(k) && !cs_config_has(fresh, k)) {
            cs_log(CS_LOG_NOTICE,
                   CS_LOGNO(00021) "reload: %s removed; it takes effect at "
                                   "the next restart",
                   k);
        }
    }
}

static void reload(daemon_state_t *st)
{
    char err[CS_MAIN_ERR_MAX];
    cs_config_t *fresh = NULL;
    cs_core_conf_t core;
    cs_log_level_t old_level = cs_log_get_level();
    int pass_changed = 0, timeout_changed = 0;

    cs_log(CS_LOG_NOTICE, CS_LOGNO(00022) "SIGHUP: reloading");
    if (cs_log_reopen(err, sizeof(err)) != CS_OK) {
        cs_log(CS_LOG_ERROR, CS_LOGNO(00023) "reload: %s", err);
    }
    if (load_config(st, &fresh, err, sizeof(err)) != CS_OK) {
        cs_log(CS_LOG_ERROR,
               CS_LOGNO(00024) "reload: %s; keeping the running settings", err);
        goto reopen;
    }
    cs_config_inherit_known(fresh, st->cfg);
    if (cs_config_core(fresh, &core, err, sizeof(err)) != CS_OK ||
        cs_config_check_unused(fresh, err, sizeof(err)) != CS_OK) {
        cs_log(CS_LOG_ERROR,
               CS_LOGNO(00024) "reload: %s; keeping the running settings", err);
        cs_config_core_wipe(&core);
        goto reopen;
    }
    if (core.loglevel != old_level) {
        cs_log_set_level(core.loglevel);
        cs_log(CS_LOG_NOTICE,
               CS_LOGNO(00025) "reload: loglevel changed from %s to %s",
               cs_log_level_name(old_level), cs_log_level_name(core.loglevel));
    }
    cs_server_apply(st->srv, &core, &pass_changed, &timeout_changed);
    cs_config_core_wipe(&core);
    if (pass_changed) {
        cs_log(CS_LOG_NOTICE, CS_LOGNO(00026) "reload: password %s",
               cs_auth_required(cs_server_auth(st->srv))
                   ? "changed; clients must authenticate again"
                   : "removed; authentication is off");
    }
    if (timeout_changed) {
        cs_log(CS_LOG_NOTICE,
               CS_LOGNO(00027) "reload: timeout changed from %ld to %ld "
                               "seconds",
               st->core.timeout, core.timeout);
        st->core.timeout = core.timeout;
    }
    log_restart_keys(st->cfg, fresh);
reopen:
    cs_config_free(fresh);
    if (st->cache != NULL) {
        cs_engine_reopen(st->cache);
    }
}

/* ---- main ------------------------------------------------------- */

static void describe_listeners(const cs_core_conf_t *core, char *out,
                               size_t outlen)
{
    size_t n = 0;

    out[0] = '\0';
    if (core->port != 0) {
        n += (size_t)snprintf(out + n, outlen - n, "%s port %d", core->bind,
                              core->port);
    }
    if (core->unixsocket != NULL && n < outlen) {
        n += (size_t)snprintf(out + n, outlen - n, "%sunix socket %s",
                              n > 0 ? ", " : "", core->unixsocket);
    }
    if (core->metrics_port != 0 && n < outlen) {
        snprintf(out + n, outlen - n, "%smetrics on %s port %d",
                 n > 0 ? ", " : "", core->bind, core->metrics_port);
    }
}

int main(int argc, char **argv)
{
    daemon_state_t st;
    cs_server_stats_t stats;
    char err[CS_MAIN_ERR_MAX], where[512];
    sigset_t sigs;
    siginfo_t si;
    int sig, rc = 1, i;

    memset(&st, 0, sizeof(st));
    st.notify_fd = -1;
    st.tty_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (parse_args(&st, argc, argv) != CS_OK) {
        usage(stderr);
        return 2;
    }
    if (load_config(&st, &st.cfg, err, sizeof(err)) != CS_OK ||
        cs_config_core(st.cfg, &st.core, err, sizeof(err)) != CS_OK) {
        fprintf(stderr, "ark-cached: %s\n", err);
        goto out;
    }
    cs_log_set_level(st.core.loglevel);
    if (st.core.logfile != NULL) {
        st.tty_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        if (cs_log_open(st.core.logfile, err, sizeof(err)) != CS_OK) {
            fprintf(stderr, "ark-cached: %s\n", err);
            goto out;
        }
    }
    cs_log(CS_LOG_NOTICE,
           CS_LOGNO(00010) "ark-cached %s starting (pid %ld, config %s)",
           CS_VERSION, (long)getpid(),
           st.config_path != NULL ? st.config_path : "none");
    if (st.core.pidfile != NULL &&
        check_pidfile(st.core.pidfile, err, sizeof(err)) != CS_OK) {
        fatal(&st, CS_LOGNO(00011) "%s", err);
        goto out;
    }
    if (cs_server_create(&st.srv, &st.core, st.config_path, err, sizeof(err)) !=
        CS_OK) {
        fatal(&st, CS_LOGNO(00012) "%s", err);
        goto out;
    }
    if (st.core.daemonize && daemon_begin(&st, err, sizeof(err)) != CS_OK) {
        fatal(&st, CS_LOGNO(00013) "cannot daemonize: %s", err);
        goto out;
    }
    if (st.core.pidfile != NULL) {
        if (write_pidfile(st.core.pidfile, err, sizeof(err)) != CS_OK) {
            fatal(&st, CS_LOGNO(00014) "%s", err);
            goto out;
        }
        st.pidfile_written = 1;
    }
    if (cs_engine_start(st.cfg, &st.cache, err, sizeof(err)) != CS_OK) {
        fatal(&st, CS_LOGNO(00015) "cache engine: %s", err);
        st.cache = NULL;
        goto out;
    }
    if (cs_config_check_unused(st.cfg, err, sizeof(err)) != CS_OK) {
        fatal(&st, CS_LOGNO(00016) "%s", err);
        goto out;
    }
    if (cs_server_start(st.srv, st.cache, err, sizeof(err)) != CS_OK) {
        fatal(&st, CS_LOGNO(00017) "%s", err);
        goto out;
    }
    describe_listeners(&st.core, where, sizeof(where));
    cs_server_get_stats(st.srv, &stats);
    cs_log(CS_LOG_NOTICE,
           CS_LOGNO(00018) "ready: %s; I/O threads %d, maxclients %llu, "
                           "authentication %s",
           where, stats.threads, (unsigned long long)stats.maxclients,
           st.core.requirepass[0] != '\0' ? "required" : "off");
    cs_config_core_wipe(&st.core);
    if (st.notify_fd >= 0) {
        daemon_ready(&st);
    }
    if (st.tty_fd >= 0) {
        close(st.tty_fd);
        st.tty_fd = -1;
    }

    for (;;) {
        sig = sigwaitinfo(&sigs, &si);
        if (sig < 0) {
            continue; /* EINTR */
        }
        if (sig == SIGHUP) {
            reload(&st);
            continue;
        }
        cs_log(CS_LOG_NOTICE,
               CS_LOGNO(00019) "%s received (from pid %ld); shutting down",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", (long)si.si_pid);
        break;
    }
    rc = 0;

out:
    if (st.srv != NULL) {
        cs_server_stop(st.srv);
    }
    if (st.cache != NULL) {
        cs_engine_stop(st.cache);
    }
    cs_server_free(st.srv);
    remove_pidfile(&st);
    if (rc == 0) {
        cs_log(CS_LOG_NOTICE, CS_LOGNO(00028) "stopped");
    }
    cs_config_core_wipe(&st.core);
    cs_config_free(st.cfg);
    for (i = 0; i < st.noverrides; i++) {
        cs_free(st.overrides[i].key);
    }
    if (st.tty_fd >= 0) {
        close(st.tty_fd);
    }
    return rc;
}
