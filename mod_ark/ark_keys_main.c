/* ark-keys: the command-line tool that manages an Ark keys file.
 *
 * Like htpasswd for mod_ark's virtual keys: "create" makes a random
 * secret, stores only its SHA-256, hint and creation time in the file and
 * prints the secret once; "rotate" does the same for an existing key and
 * keeps the old hash valid for a grace period; "set", "tenant", "list",
 * "show", "revoke", "enable", "delete", "verify" and "check" inspect or
 * change the file, limits and budgets included. "usage" reads a key's and
 * its tenant's counters from the Redis that mod_ark's governance writes
 * (names and maths from ark_limit.h), through hiredis. Parsing and writing
 * the format is ark_keys.c's job; this file does argument handling, output
 * and safe file replacement. An edit takes an exclusive flock on the keys file
 * (and re-checks after locking that the path still names the locked inode, as
 * a concurrent edit may have renamed a new file over it), parses the file
 * and refuses to go on if it has errors, writes FILE.tmp.<pid> with the
 * old file's mode and owner, fsyncs it and renames it over FILE. httpd
 * thus always sees either the old or the new file, complete.
 *
 * Exit codes: 0 success, 1 operational error, 2 usage error.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "ark_cli.h"
#include "ark_keys.h"
#include "ark_limit.h"
#include "ark_route.h"

#define CLI_PROG "ark-keys"

#define CLI_EXIT_OK ARK_CLI_EXIT_OK
#define CLI_EXIT_FAIL ARK_CLI_EXIT_FAIL
#define CLI_EXIT_USAGE ARK_CLI_EXIT_USAGE

/* Mode of a keys file created with -c. */
#define CLI_NEW_FILE_MODE 0640

/* Times we retry when the file is replaced while we wait for its lock. */
#define CLI_LOCK_TRIES 100

/* Most bytes "verify" reads from stdin, and "usage" from a password
 * file. */
#define CLI_SECRET_INPUT_MAX 4096

/* Largest rpm/tpm/concurrency value (as the keys file allows). */
#define CLI_LIMIT_MAX 1000000000000LL

/* rotate: the default grace period, and the longest one (366 days). */
#define CLI_GRACE_DEFAULT "24h"
#define CLI_GRACE_MAX_SEC (366LL * 86400)

/* usage: the default Redis and key prefix, and the connect and command
 * timeout. */
#define CLI_REDIS_DEFAULT "127.0.0.1:6379"
#define CLI_REDIS_PORT 6379
#define CLI_PREFIX_DEFAULT "ark:"
#define CLI_REDIS_TIMEOUT_SEC 5

/* The window of rpm= and tpm=: one minute. */
#define CLI_RATE_PERIOD apr_time_from_sec(60)

static const char cli_usage[] =
    "Usage: ark-keys COMMAND [OPTIONS]\n"
    "\n"
    "Manage the virtual keys file of the Ark gateway (mod_ark).\n"
    "Only SHA-256 hashes of secrets are stored; see docs/keys.md.\n"
    "\n"
    "Commands:\n"
    "  create [-c] -f FILE -n NAME [-t TENANT] [-m MODELS] [-p CLASS]\n"
    "         [-T TAGS] [LIMITS]\n"
    "        Generate a key. Prints its secret once on stdout; store it\n"
    "        now, it cannot be shown again.\n"
    "          -c, --create       create FILE (mode 0640) if missing\n"
    "          -n, --name NAME    key name: 1-64 of A-Z a-z 0-9 . _ @ -\n"
    "          -t, --tenant T     tenant (default: NAME)\n"
    "          -m, --models M     comma-separated model aliases, or '*'\n"
    "                             for all models (default '*')\n"
    "          -p, --priority P   priority class: high, normal (default)\n"
    "                             or low\n"
    "          -T, --tags TAGS    compliance tags the serving channel must\n"
    "                             have, e.g. region=eu,region=us,tier=gold\n"
    "                             (eu or us, and gold); default none\n"
    "  set -f FILE NAME [-t TENANT] [-m MODELS] [-p CLASS] [-T TAGS]\n"
    "      [LIMITS]\n"
    "        Change attributes of a key; options as for create, at least\n"
    "        one. -T '' removes all tags.\n"
    "  tenant -f FILE [-t TENANT [LIMITS]]\n"
    "        Without -t, list tenants and their limits. With -t and\n"
    "        limits, change the tenant's limits (shared by all its keys);\n"
    "        with -t alone, show them.\n"
    "  rotate -f FILE NAME [--grace DURATION]\n"
    "        Give a key a new secret, printed once on stdout like create.\n"
    "        The old secret still works for DURATION (default 24h; e.g.\n"
    "        30s, 15m, 24h, 7d; 0 = not at all).\n"
    "  list -f FILE\n"
    "        Show name, tenant, state, priority, models, tags, hint,\n"
    "        creation time and limits.\n"
    "  show -f FILE NAME [--json]\n"
    "        Show every attribute of one key, its limits and budgets, its\n"
    "        tenant's limits and whether a rotated-out secret still works.\n"
    "  usage -f FILE NAME [--redis ADDR] [--prefix P] [--password-file F]\n"
    "        [--json]\n"
    "        Show what a key and its tenant used today and this month\n"
    "        (requests, tokens, spend against budgets, cache hits) and\n"
    "        their current rate and concurrency use, read from Redis.\n"
    "          --redis ADDR       HOST:PORT or unix:/PATH\n"
    "                             (default " CLI_REDIS_DEFAULT ")\n"
    "          --prefix P         prefix of mod_ark's Redis keys, as set by\n"
    "                             ArkGovernPrefix (default " CLI_PREFIX_DEFAULT
    ")\n"
    "          --password-file F  send AUTH with the first line of F\n"
    "  revoke -f FILE NAME\n"
    "        Revoke a key (it is kept in the file, marked revoked).\n"
    "  enable -f FILE NAME\n"
    "        Re-enable a revoked key.\n"
    "  delete -f FILE NAME\n"
    "        Remove a key from the file.\n"
    "  verify -f FILE\n"
    "        Read a secret from stdin and say which key it belongs to.\n"
    "  check -f FILE\n"
    "        Parse FILE and report errors; run before a graceful reload.\n"
    "\n"
    "LIMITS (create, set, tenant); 'none' or 0 removes a limit:\n"
    "  --rpm N              requests per minute\n"
    "  --tpm N              tokens (prompt + completion) per minute\n"
    "  --concurrency N      requests in flight at once\n"
    "  --budget-day AMOUNT  spend per UTC day, e.g. 25 or 0.50\n"
    "  --budget-month AMOUNT  spend per UTC month\n"
    "  --provider-limit PROVIDER:rpm=N,tpm=N  (create, set; repeatable)\n"
    "                       the key's limits towards one ArkProvider;\n"
    "                       PROVIDER:none removes both\n"
    "\n"
    "Options common to all commands:\n"
    "  -f, --file FILE    the keys file\n"
    "  -n, --name NAME    the key (instead of NAME after the options)\n"
    "  -h, --help         show this help\n"
    "\n"
    "httpd reads the file at startup and on graceful reload\n"
    "(apachectl -k graceful); changes take effect then.\n"
    "\n"
    "Exit status: 0 success, 1 error, 2 usage error.\n";

/* Options without a letter: apr_getopt ids above 255. */
enum {
    CLI_OPT_RPM = 256,
    CLI_OPT_TPM,
    CLI_OPT_CONCURRENCY,
    CLI_OPT_BUDGET_DAY,
    CLI_OPT_BUDGET_MONTH,
    CLI_OPT_PROVIDER_LIMIT,
    CLI_OPT_GRACE,
    CLI_OPT_REDIS,
    CLI_OPT_PREFIX,
    CLI_OPT_PASSWORD_FILE,
    CLI_OPT_JSON
};

/* The bit of a long-only option in cli_cmd_t.long_opts. */
#define CLI_L(id) (1u << ((id)-CLI_OPT_RPM))
#define CLI_L_LIMITS                                                           \
    (CLI_L(CLI_OPT_RPM) | CLI_L(CLI_OPT_TPM) | CLI_L(CLI_OPT_CONCURRENCY) |    \
     CLI_L(CLI_OPT_BUDGET_DAY) | CLI_L(CLI_OPT_BUDGET_MONTH))
#define CLI_L_KEY_LIMITS (CLI_L_LIMITS | CLI_L(CLI_OPT_PROVIDER_LIMIT))
#define CLI_L_REDIS                                                            \
    (CLI_L(CLI_OPT_REDIS) | CLI_L(CLI_OPT_PREFIX) |                            \
     CLI_L(CLI_OPT_PASSWORD_FILE) | CLI_L(CLI_OPT_JSON))

/* Indexes of the limit options in cli_args_t.limit. */
enum {
    CLI_LIM_RPM,
    CLI_LIM_TPM,
    CLI_LIM_CONCURRENCY,
    CLI_LIM_BUDGET_DAY,
    CLI_LIM_BUDGET_MONTH,
    CLI_LIM_COUNT
};

static const char *const cli_lim_names[CLI_LIM_COUNT] = {
    "rpm", "tpm", "concurrency", "budget_day", "budget_month"};

typedef struct cli_args_t {
    const char *command;
    const char *file;
    const char *name;
    const char *tenant;
    const char *models;
    const char *priority;
    const char *tags;
    int create;
    const char *limit[CLI_LIM_COUNT]; /* --rpm ... --budget-month */
    apr_array_header_t *plimits;      /* const char *: --provider-limit */
    const char *grace;
    const char *redis;
    const char *prefix;
    const char *password_file;
    int json;
} cli_args_t;

typedef int (*cli_run_fn)(const cli_args_t *args, apr_pool_t *p);

typedef struct cli_cmd_t {
    const char *name;
    const char *opts;   /* option letters the command accepts */
    unsigned long_opts; /* CLI_L() bits of the long-only ones */
    int name_arg;       /* names one key: NAME after the options or -n */
    cli_run_fn run;
} cli_cmd_t;

/* An edit of a parsed ring; sets *pchanged when the file must be
 * rewritten. Returns an exit code. */
typedef int (*cli_edit_fn)(ark_keyring_t *ring, int *pchanged, void *baton,
                           apr_pool_t *p);

/* ------------------------------------------------------------------ */
/* Messages                                                           */
/* ------------------------------------------------------------------ */

/* apr_getopt's error callback: it passes "%s: %s: %c\n"-style formats
 * with the command name first; we put our program name in front. */
static void cli_getopt_err(void *arg, const char *fmt, ...)
{
    va_list ap;

    (void)arg;
    fputs(CLI_PROG " ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* Mode bits httpd refuses on a keys file (ark_keys_check_mode). */
#define CLI_UNSAFE_MODE (S_IWGRP | S_IROTH | S_IWOTH)

static void cli_warn_mode(const char *path, const struct stat *st)
{
    if (st->st_mode & CLI_UNSAFE_MODE) {
        ark_cli_warn("%s has mode %04o, which httpd refuses (readable or "
                 "writable by others, or writable by its group); run "
                 "'chmod 640 %s'", path, (unsigned int)(st->st_mode & 07777),
                 path);
    }
}

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

/* Follow a symlink so that the rename replaces its target, not it. */
static const char *cli_resolve(const char *path, apr_pool_t *p)
{
    struct stat st;
    char *real;
    const char *out;

    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        real = realpath(path, NULL);
        if (real) {
            out = apr_pstrdup(p, real);
            free(real);
            return out;
        }
    }
    return path;
}

/* Open and exclusively lock path. On success *pfd holds the lock until
 * closed and *pst describes the locked file; *pcreated says whether we
 * created it (empty) because of -c. */
static int cli_lock(int *pfd, struct stat *pst, int *pcreated, const char *path,
                    int create)
{
    struct stat now;
    int fd, tries;

    *pfd = -1;
    *pcreated = 0;
    for (tries = 0; tries < CLI_LOCK_TRIES; tries++) {
        *pcreated = 0;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT && create) {
            fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                      CLI_NEW_FILE_MODE);
            if (fd < 0 && errno == EEXIST) {
                continue;
            }
            if (fd >= 0) {
                *pcreated = 1;
                /* Exactly 0640, whatever the umask. */
                if (fchmod(fd, CLI_NEW_FILE_MODE) < 0) {
                    ark_cli_error("cannot set the mode of %s: %s", path,
                              strerror(errno));
                    unlink(path);
                    close(fd);
                    return CLI_EXIT_FAIL;
                }
            }
        }
        if (fd < 0) {
            if (errno == ENOENT) {
                ark_cli_error("%s does not exist (use -c to create it)", path);
            }
            else {
                ark_cli_error("cannot open %s: %s", path, strerror(errno));
            }
            return CLI_EXIT_FAIL;
        }
        while (flock(fd, LOCK_EX) < 0) {
            if (errno != EINTR) {
                ark_cli_error("cannot lock %s: %s", path, strerror(errno));
                if (*pcreated) {
                    unlink(path);
                }
                close(fd);
                return CLI_EXIT_FAIL;
            }
        }
        if (fstat(fd, pst) < 0) {
            ark_cli_error("cannot stat %s: %s", path, strerror(errno));
            close(fd);
            return CLI_EXIT_FAIL;
        }
        if (stat(path, &now) == 0 && now.st_dev == pst->st_dev &&
            now.st_ino == pst->st_ino) {
            if (!S_ISREG(pst->st_mode)) {
                ark_cli_error("%s is not a regular file", path);
                close(fd);
                return CLI_EXIT_FAIL;
            }
            *pfd = fd;
            return CLI_EXIT_OK;
        }
        /* Replaced or removed by another ark-keys while we waited. */
        close(fd);
    }
    ark_cli_error("cannot lock %s: it keeps being replaced", path);
    return CLI_EXIT_FAIL;
}

static int cli_read_fd(char **ptext, apr_size_t *plen, int fd, const char *path,
                       apr_pool_t *p)
{
    apr_size_t cap = 64 * 1024, len = 0;
    char *buf = apr_palloc(p, cap), *bigger;
    ssize_t n;

    for (;;) {
        if (len == cap) {
            if (cap > ARK_KEYS_FILE_MAX) {
                ark_cli_error("%s is larger than %d bytes", path,
                          ARK_KEYS_FILE_MAX);
                return CLI_EXIT_FAIL;
            }
            bigger = apr_palloc(p, cap * 2);
            memcpy(bigger, buf, len);
            buf = bigger;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ark_cli_error("cannot read %s: %s", path, strerror(errno));
            return CLI_EXIT_FAIL;
        }
        if (n == 0) {
            break;
        }
        len += (apr_size_t)n;
    }
    if (len > ARK_KEYS_FILE_MAX) {
        ark_cli_error("%s is larger than %d bytes", path, ARK_KEYS_FILE_MAX);
        return CLI_EXIT_FAIL;
    }
    *ptext = buf;
    *plen = len;
    return CLI_EXIT_OK;
}

static const char *cli_dirname(const char *path, apr_pool_t *p)
{
    const char *slash = strrchr(path, '/');

    if (!slash) {
        return ".";
    }
    if (slash == path) {
        return "/";
    }
    return apr_pstrmemdup(p, path, (apr_size_t)(slash - path));
}

/* Replace path with text: write path.tmp.<pid> with the mode and owner
 * of st (less the bits httpd refuses: see CLI_UNSAFE_MODE), fsync it,
 * rename it over path, fsync the directory. */
static int cli_write(const char *path, const char *text, const struct stat *st,
                     apr_pool_t *p)
{
    const char *tmp;
    apr_size_t len = strlen(text), off = 0;
    ssize_t n;
    int fd, dfd;

    tmp = apr_psprintf(p, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* Left by a dead process with our pid; we hold the lock. */
        unlink(tmp);
        fd =
            open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    }
    if (fd < 0) {
        ark_cli_error("cannot create %s: %s", tmp, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if ((st->st_uid != geteuid() || st->st_gid != getegid()) &&
        fchown(fd, st->st_uid, st->st_gid) < 0) {
        ark_cli_warn("cannot keep the owner/group of %s (%s); the new file "
                 "belongs to you",
                 path, strerror(errno));
    }
    if (fchmod(fd, st->st_mode & 07777 & ~(mode_t)CLI_UNSAFE_MODE) < 0) {
        ark_cli_error("cannot set the mode of %s: %s", tmp, strerror(errno));
        goto fail;
    }
    while (off < len) {
        n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ark_cli_error("cannot write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (apr_size_t)n;
    }
    if (fsync(fd) < 0) {
        ark_cli_error("cannot sync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        ark_cli_error("cannot close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        ark_cli_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    /* Make the rename durable; failure here loses nothing already done. */
    dfd = open(cli_dirname(path, p), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return CLI_EXIT_OK;

fail:
    if (fd >= 0) {
        close(fd);
    }
    unlink(tmp);
    return CLI_EXIT_FAIL;
}

/* Lock, read, parse, edit and (if changed) rewrite the keys file. */
static int cli_edit(const cli_args_t *args, cli_edit_fn edit, void *baton,
                    apr_pool_t *p)
{
    ark_keyring_t *ring;
    struct stat st;
    const char *path, *err, *text;
    char *old;
    apr_size_t len;
    int fd, created, changed = 0, rc;

    path = cli_resolve(args->file, p);
    rc = cli_lock(&fd, &st, &created, path, args->create);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    rc = cli_read_fd(&old, &len, fd, path, p);
    if (rc != CLI_EXIT_OK) {
        goto done;
    }
    if (ark_keys_parse(&ring, old, len, &err, p) != APR_SUCCESS) {
        ark_cli_error("%s: %s", path, err);
        ark_cli_error("not changing a file with errors; fix it first "
                  "(ark-keys check -f %s)",
                  path);
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    rc = edit(ring, &changed, baton, p);
    if (rc == CLI_EXIT_OK && changed) {
        if (ark_keys_format(&text, ring, p) != APR_SUCCESS) {
            ark_cli_error("cannot format the keys file");
            rc = CLI_EXIT_FAIL;
            goto done;
        }
        rc = cli_write(path, text, &st, p);
        if (rc == CLI_EXIT_OK && (st.st_mode & CLI_UNSAFE_MODE)) {
            ark_cli_warn("%s: mode changed from %04o to %04o (httpd refuses keys "
                     "files others may read or write, or its group write)",
                     path, (unsigned int)(st.st_mode & 07777),
                     (unsigned int)(st.st_mode & 07777 & ~CLI_UNSAFE_MODE));
        }
    }
    else if (rc == CLI_EXIT_OK) {
        cli_warn_mode(path, &st);
    }
done:
    if (rc != CLI_EXIT_OK && created) {
        /* Do not leave behind the empty file made for -c. */
        unlink(path);
    }
    close(fd);
    return rc;
}

/* Load the file read-only (no lock: edits replace it atomically). */
static int cli_load(ark_keyring_t **pring, const cli_args_t *args,
                    apr_pool_t *p)
{
    struct stat st;
    const char *err;

    if (stat(args->file, &st) == 0) {
        cli_warn_mode(args->file, &st);
    }
    if (ark_keys_load(pring, args->file, &err, p) != APR_SUCCESS) {
        ark_cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static int cli_flush_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ark_cli_error("cannot write to standard output: %s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* Shows a new secret, its only showing, and wipes it from memory;
 * returns cli_flush_stdout's verdict. */
static int cli_print_secret(const char *secret)
{
    int rc;

    fputs(secret, stdout);
    fputc('\n', stdout);
    rc = cli_flush_stdout();
    OPENSSL_cleanse((void *)secret, strlen(secret));
    return rc;
}

/* ------------------------------------------------------------------ */
/* create                                                             */
/* ------------------------------------------------------------------ */

/* -t, -m, -p and -T of create and set, checked before the file is locked. */
typedef struct cli_attrs_t {
    apr_array_header_t *models;
    int all_models;
    int priority;             /* an ark_priority_t */
    apr_array_header_t *tags; /* ark_tag_t; empty for none */
} cli_attrs_t;

/* Parse the attribute options present in args into *a (absent ones keep
 * their defaults). Returns an exit code, having printed a usage error. */
static int cli_parse_attrs(cli_attrs_t *a, const cli_args_t *args,
                           apr_pool_t *p)
{
    const char *err;

    if (args->tenant && !ark_keys_name_valid(args->tenant)) {
        return ark_cli_usage_error("%s: invalid tenant; use 1-64 "
                               "characters of A-Z a-z 0-9 . _ @ -",
                               args->command);
    }
    if (ark_keys_models_parse(&a->models, &a->all_models,
                              args->models ? args->models : "*", &err,
                              p) != APR_SUCCESS) {
        return ark_cli_usage_error("%s: -m: %s", args->command, err);
    }
    a->priority = ARK_PRIO_NORMAL;
    if (args->priority) {
        a->priority = ark_priority_parse(args->priority);
        if (a->priority < 0) {
            return ark_cli_usage_error("%s: -p: unknown priority class; use "
                                   "high, normal or low",
                                   args->command);
        }
    }
    if (ark_keys_tags_parse(&a->tags, args->tags ? args->tags : "", &err, p) !=
        APR_SUCCESS) {
        return ark_cli_usage_error("%s: -T: %s", args->command, err);
    }
    return CLI_EXIT_OK;
}

/* "region=eu,tier=gold", or "-" for none. */
static const char *cli_tags_text(const apr_array_header_t *tags, apr_pool_t *p)
{
    apr_array_header_t *parts;
    int i;

    if (!tags || tags->nelts == 0) {
        return "-";
    }
    parts = apr_array_make(p, tags->nelts, sizeof(const char *));
    for (i = 0; i < tags->nelts; i++) {
        const ark_tag_t *t = &APR_ARRAY_IDX(tags, i, ark_tag_t);

        APR_ARRAY_PUSH(parts, const char *) =
            apr_pstrcat(p, t->key, "=", t->value, NULL);
    }
    return apr_array_pstrcat(p, parts, ',');
}

/* A time as "2026-11-27T11:00:00Z". */
static const char *cli_stamp(apr_time_t t, apr_pool_t *p)
{
    const char *stamp;

    if (ark_keys_timestamp_make(&stamp, t, p) != APR_SUCCESS) {
        return "?";
    }
    return stamp;
}

static const char *cli_models_text(const ark_key_t *k, apr_pool_t *p)
{
    return k->all_models ? "*" : apr_array_pstrcat(p, k->models, ',');
}

/* ------------------------------------------------------------------ */
/* Limits options                                                     */
/* ------------------------------------------------------------------ */

/* A change of a provider limit from --provider-limit. */
typedef struct cli_plimit_t {
    const char *provider;
    apr_int64_t rpm, tpm;
    int rpm_set, tpm_set;
} cli_plimit_t;

/* The limit options given, parsed: which fields to change, and to what
 * (0 removes a limit). */
typedef struct cli_limits_t {
    int set[CLI_LIM_COUNT];
    ark_limits_t values;
    apr_array_header_t *providers; /* cli_plimit_t */
} cli_limits_t;

static apr_int64_t *cli_lim_field(ark_limits_t *l, int i)
{
    switch (i) {
    case CLI_LIM_RPM:
        return &l->rpm;
    case CLI_LIM_TPM:
        return &l->tpm;
    case CLI_LIM_CONCURRENCY:
        return &l->concurrency;
    case CLI_LIM_BUDGET_DAY:
        return &l->budget_day;
    default:
        return &l->budget_month;
    }
}

static apr_int64_t cli_lim_get(const ark_limits_t *l, int i)
{
    switch (i) {
    case CLI_LIM_RPM:
        return l->rpm;
    case CLI_LIM_TPM:
        return l->tpm;
    case CLI_LIM_CONCURRENCY:
        return l->concurrency;
    case CLI_LIM_BUDGET_DAY:
        return l->budget_day;
    default:
        return l->budget_month;
    }
}

/* "none", "0" or 1..CLI_LIMIT_MAX. Returns 0 if invalid. */
static int cli_count_parse(apr_int64_t *pv, const char *s)
{
    apr_int64_t v = 0;
    const char *c;

    if (!strcmp(s, "none")) {
        *pv = 0;
        return 1;
    }
    if (!*s) {
        return 0;
    }
    for (c = s; *c; c++) {
        if (*c < '0' || *c > '9') {
            return 0;
        }
        v = v * 10 + (*c - '0');
        if (v > CLI_LIMIT_MAX) {
            return 0;
        }
    }
    *pv = v;
    return 1;
}

/* "none" or an amount (0 removes the budget). Returns 0 if invalid. */
static int cli_money_parse(apr_int64_t *pv, const char *s)
{
    if (!strcmp(s, "none")) {
        *pv = 0;
        return 1;
    }
    return ark_money_parse(pv, s) == APR_SUCCESS;
}

/* Parses PROVIDER:rpm=N,tpm=N or PROVIDER:none into *pl. */
static int cli_plimit_parse(cli_plimit_t *pl, const char *spec, const char *cmd,
                            apr_pool_t *p)
{
    const char *colon = strchr(spec, ':'), *item, *comma, *eq;
    apr_size_t n;
    apr_int64_t v;
    int is_rpm;

    memset(pl, 0, sizeof(*pl));
    if (!colon || colon == spec) {
        return ark_cli_usage_error("%s: --provider-limit: expected "
                               "PROVIDER:rpm=N,tpm=N or PROVIDER:none",
                               cmd);
    }
    pl->provider = apr_pstrmemdup(p, spec, (apr_size_t)(colon - spec));
    if (strlen(pl->provider) > 64 ||
        strspn(pl->provider, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
                             "wxyz0123456789._-") != strlen(pl->provider)) {
        return ark_cli_usage_error("%s: --provider-limit: invalid provider name; "
                               "use 1-64 characters of A-Z a-z 0-9 . _ -",
                               cmd);
    }
    if (!strcmp(colon + 1, "none")) {
        pl->rpm_set = pl->tpm_set = 1;
        return CLI_EXIT_OK;
    }
    for (item = colon + 1;; item = comma + 1) {
        comma = strchr(item, ',');
        n = comma ? (apr_size_t)(comma - item) : strlen(item);
        eq = memchr(item, '=', n);
        is_rpm = eq && eq - item == 3 && !strncmp(item, "rpm", 3);
        if (!eq || !(is_rpm || (eq - item == 3 && !strncmp(item, "tpm", 3))) ||
            !cli_count_parse(
                &v,
                apr_pstrmemdup(p, eq + 1, n - (apr_size_t)(eq - item) - 1))) {
            return ark_cli_usage_error(
                "%s: --provider-limit: expected PROVIDER:rpm=N,tpm=N with N "
                "from 1 to 1000000000000, none or 0, or PROVIDER:none",
                cmd);
        }
        if (is_rpm ? pl->rpm_set : pl->tpm_set) {
            return ark_cli_usage_error("%s: --provider-limit: %s given twice for "
                                   "%s",
                                   cmd, is_rpm ? "rpm" : "tpm", pl->provider);
        }
        if (is_rpm) {
            pl->rpm = v;
            pl->rpm_set = 1;
        }
        else {
            pl->tpm = v;
            pl->tpm_set = 1;
        }
        if (!comma) {
            break;
        }
    }
    return CLI_EXIT_OK;
}

/* Parse the limit options present in args; *pany says whether there
 * were any. Returns an exit code, having printed a usage error. */
static int cli_parse_limits(cli_limits_t *l, int *pany, const cli_args_t *args,
                            apr_pool_t *p)
{
    static const char *const opt[CLI_LIM_COUNT] = {
        "--rpm", "--tpm", "--concurrency", "--budget-day", "--budget-month"};
    cli_plimit_t *pl;
    const char *v;
    int i, j, ok, rc;

    memset(l, 0, sizeof(*l));
    *pany = 0;
    for (i = 0; i < CLI_LIM_COUNT; i++) {
        v = args->limit[i];
        if (!v) {
            continue;
        }
        if (i == CLI_LIM_BUDGET_DAY || i == CLI_LIM_BUDGET_MONTH) {
            ok = cli_money_parse(cli_lim_field(&l->values, i), v);
        }
        else {
            ok = cli_count_parse(cli_lim_field(&l->values, i), v);
        }
        if (!ok) {
            return ark_cli_usage_error(
                "%s: %s: expected %s, or none (0) to remove the limit",
                args->command, opt[i],
                i >= CLI_LIM_BUDGET_DAY
                    ? "an amount with at most 9 decimals, such as 25 or 0.50"
                    : "a whole number from 1 to 1000000000000");
        }
        l->set[i] = 1;
        *pany = 1;
    }
    l->providers = apr_array_make(p, 2, sizeof(cli_plimit_t));
    for (i = 0; args->plimits && i < args->plimits->nelts; i++) {
        pl = apr_array_push(l->providers);
        rc = cli_plimit_parse(pl, APR_ARRAY_IDX(args->plimits, i, const char *),
                              args->command, p);
        if (rc != CLI_EXIT_OK) {
            return rc;
        }
        for (j = 0; j < i; j++) {
            if (!strcmp(APR_ARRAY_IDX(l->providers, j, cli_plimit_t).provider,
                        pl->provider)) {
                return ark_cli_usage_error("%s: --provider-limit: provider '%s' "
                                       "given twice",
                                       args->command, pl->provider);
            }
        }
        *pany = 1;
    }
    return CLI_EXIT_OK;
}

/* The limits after applying the changes in l to cur. */
static void cli_limits_apply(ark_limits_t *out, const ark_limits_t *cur,
                             const cli_limits_t *l)
{
    int i;

    *out = *cur;
    for (i = 0; i < CLI_LIM_COUNT; i++) {
        if (l->set[i]) {
            *cli_lim_field(out, i) = cli_lim_get(&l->values, i);
        }
    }
}

/* The provider limits after applying the changes in l to cur (a copy;
 * entries with both limits 0 are dropped by ark_keys_set_attrs). */
static apr_array_header_t *cli_plimits_apply(const apr_array_header_t *cur,
                                             const cli_limits_t *l,
                                             apr_pool_t *p)
{
    apr_array_header_t *out;
    ark_provider_limit_t *o;
    const cli_plimit_t *c;
    int i, j;

    out = apr_array_make(p, 4, sizeof(ark_provider_limit_t));
    for (i = 0; cur && i < cur->nelts; i++) {
        *(ark_provider_limit_t *)apr_array_push(out) =
            APR_ARRAY_IDX(cur, i, ark_provider_limit_t);
    }
    for (i = 0; i < l->providers->nelts; i++) {
        c = &APR_ARRAY_IDX(l->providers, i, cli_plimit_t);
        o = NULL;
        for (j = 0; j < out->nelts; j++) {
            if (!strcmp(APR_ARRAY_IDX(out, j, ark_provider_limit_t).provider,
                        c->provider)) {
                o = &APR_ARRAY_IDX(out, j, ark_provider_limit_t);
            }
        }
        if (!o) {
            o = apr_array_push(out);
            o->provider = c->provider;
            o->rpm = o->tpm = 0;
        }
        if (c->rpm_set) {
            o->rpm = c->rpm;
        }
        if (c->tpm_set) {
            o->tpm = c->tpm;
        }
    }
    return out;
}

/* "rpm=60,tpm=10000,budget_day=25,rpm@openai=10", or "-" for none. */
static const char *cli_limits_text(const ark_limits_t *l,
                                   const apr_array_header_t *pls, apr_pool_t *p)
{
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(const char *));
    const ark_provider_limit_t *pl;
    apr_int64_t v;
    int i;

    for (i = 0; i < CLI_LIM_COUNT; i++) {
        v = cli_lim_get(l, i);
        if (!v) {
            continue;
        }
        APR_ARRAY_PUSH(parts, const char *) =
            i >= CLI_LIM_BUDGET_DAY
                ? apr_pstrcat(p, cli_lim_names[i], "=", ark_money_format(v, p),
                              NULL)
                : apr_psprintf(p, "%s=%" APR_INT64_T_FMT, cli_lim_names[i], v);
    }
    for (i = 0; pls && i < pls->nelts; i++) {
        pl = &APR_ARRAY_IDX(pls, i, ark_provider_limit_t);
        if (pl->rpm) {
            APR_ARRAY_PUSH(parts, const char *) = apr_psprintf(
                p, "rpm@%s=%" APR_INT64_T_FMT, pl->provider, pl->rpm);
        }
        if (pl->tpm) {
            APR_ARRAY_PUSH(parts, const char *) = apr_psprintf(
                p, "tpm@%s=%" APR_INT64_T_FMT, pl->provider, pl->tpm);
        }
    }
    return parts->nelts ? apr_array_pstrcat(p, parts, ',') : "-";
}

typedef struct cli_create_t {
    const cli_args_t *args;
    cli_attrs_t attrs;
    cli_limits_t limits;
    const char *secret;     /* set once the key is in the ring */
    const char *key_limits; /* the new key's limits, as text */
} cli_create_t;

static int cli_create_edit(ark_keyring_t *ring, int *pchanged, void *baton,
                           apr_pool_t *p)
{
    cli_create_t *c = baton;
    ark_key_t key;
    const ark_key_t *added;
    const char *err;
    apr_size_t len;
    apr_status_t rv;

    if (ark_keys_find_name(ring, c->args->name)) {
        ark_cli_error("a key named '%s' already exists in %s", c->args->name,
                  c->args->file);
        return CLI_EXIT_FAIL;
    }
    ark_key_init(&key);
    if (ark_keys_secret_make(&c->secret, p) != APR_SUCCESS) {
        ark_cli_error("the random number generator failed");
        return CLI_EXIT_FAIL;
    }
    len = strlen(c->secret);
    key.name = c->args->name;
    key.tenant = c->args->tenant;
    ark_keys_hash(key.hash, c->secret, len);
    key.models = c->attrs.models;
    key.all_models = c->attrs.all_models;
    key.priority = c->attrs.priority;
    key.tags = c->attrs.tags;
    key.enabled = 1;
    key.hint = apr_pstrdup(p, c->secret + len - ARK_KEY_HINT_LEN);
    if (ark_keys_timestamp_make(&key.created, apr_time_now(), p) !=
        APR_SUCCESS) {
        key.created = NULL;
    }
    cli_limits_apply(&key.limits, &key.limits, &c->limits);
    key.provider_limits = cli_plimits_apply(NULL, &c->limits, p);
    rv = ark_keys_add(&added, ring, &key, &err);
    if (rv != APR_SUCCESS) {
        ark_cli_error("cannot add key '%s': %s", c->args->name, err);
        return CLI_EXIT_FAIL;
    }
    c->key_limits = cli_limits_text(&added->limits, added->provider_limits, p);
    *pchanged = 1;
    return CLI_EXIT_OK;
}

static int cli_create(const cli_args_t *args, apr_pool_t *p)
{
    cli_create_t c;
    int rc, any;

    memset(&c, 0, sizeof(c));
    c.args = args;
    if (!args->name) {
        return ark_cli_usage_error("create: -n NAME is required");
    }
    if (!ark_keys_name_valid(args->name)) {
        return ark_cli_usage_error("create: invalid name; use 1-64 characters "
                               "of A-Z a-z 0-9 . _ @ -");
    }
    if (!strncmp(args->name, ARK_KEY_SECRET_PREFIX,
                 ARK_KEY_SECRET_PREFIX_LEN)) {
        return ark_cli_usage_error("create: the name looks like a secret; "
                               "names are labels such as 'alice-laptop'");
    }
    rc = cli_parse_attrs(&c.attrs, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    rc = cli_parse_limits(&c.limits, &any, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }

    rc = cli_edit(args, cli_create_edit, &c, p);
    if (rc != CLI_EXIT_OK) {
        if (c.secret) {
            OPENSSL_cleanse((void *)c.secret, strlen(c.secret));
        }
        return rc;
    }
    rc = cli_print_secret(c.secret);
    if (rc != CLI_EXIT_OK) {
        ark_cli_error("the secret of key '%s' could not be shown; delete the "
                  "key (ark-keys delete -f %s %s) and create another",
                  args->name, args->file, args->name);
        return rc;
    }
    fprintf(stderr,
            "Key '%s' added to %s (tenant %s, models %s, priority %s, "
            "tags %s%s%s).\n"
            "Store this key now; it cannot be shown again.\n",
            args->name, args->file, args->tenant ? args->tenant : args->name,
            args->models ? args->models : "*",
            ark_priority_name((ark_priority_t)c.attrs.priority),
            cli_tags_text(c.attrs.tags, p), any ? ", limits " : "",
            any ? c.key_limits : "");
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* set                                                                */
/* ------------------------------------------------------------------ */

typedef struct cli_set_t {
    const cli_args_t *args;
    ark_key_t attrs;
    unsigned int which;  /* ARK_KEY_SET_* */
    cli_limits_t limits; /* with ARK_KEY_SET_LIMITS: the changes */
    int changed;
    const char *summary; /* the key's attributes after the edit */
} cli_set_t;

static int cli_set_edit(ark_keyring_t *ring, int *pchanged, void *baton,
                        apr_pool_t *p)
{
    cli_set_t *s = baton;
    const ark_key_t *k;
    const char *err;
    apr_status_t rv;

    k = ark_keys_find_name(ring, s->args->name);
    if (k && (s->which & ARK_KEY_SET_LIMITS)) {
        /* Only the limits given change; the others are kept. */
        cli_limits_apply(&s->attrs.limits, &k->limits, &s->limits);
        s->attrs.provider_limits =
            cli_plimits_apply(k->provider_limits, &s->limits, p);
    }
    rv = ark_keys_set_attrs(&s->changed, ring, s->args->name, &s->attrs,
                            s->which, &err);
    if (rv == APR_ENOENT) {
        ark_cli_error("no key named '%s' in %s", s->args->name, s->args->file);
        return CLI_EXIT_FAIL;
    }
    if (rv != APR_SUCCESS) {
        ark_cli_error("cannot change key '%s': %s", s->args->name, err);
        return CLI_EXIT_FAIL;
    }
    k = ark_keys_find_name(ring, s->args->name);
    s->summary = apr_psprintf(
        p, "tenant %s, models %s, priority %s, tags %s, limits %s", k->tenant,
        cli_models_text(k, p), ark_priority_name((ark_priority_t)k->priority),
        cli_tags_text(k->tags, p),
        cli_limits_text(&k->limits, k->provider_limits, p));
    *pchanged = s->changed;
    return CLI_EXIT_OK;
}

static int cli_set(const cli_args_t *args, apr_pool_t *p)
{
    cli_set_t s;
    cli_attrs_t a;
    int rc, any;

    memset(&s, 0, sizeof(s));
    memset(&a, 0, sizeof(a));
    s.args = args;
    rc = cli_parse_limits(&s.limits, &any, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    if (!args->tenant && !args->models && !args->priority && !args->tags &&
        !any) {
        return ark_cli_usage_error("set: nothing to change; give at least one "
                               "of -t, -m, -p, -T or a limit option");
    }
    rc = cli_parse_attrs(&a, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    ark_key_init(&s.attrs);
    if (args->tenant) {
        s.attrs.tenant = args->tenant;
        s.which |= ARK_KEY_SET_TENANT;
    }
    if (args->models) {
        s.attrs.models = a.models;
        s.attrs.all_models = a.all_models;
        s.which |= ARK_KEY_SET_MODELS;
    }
    if (args->priority) {
        s.attrs.priority = a.priority;
        s.which |= ARK_KEY_SET_PRIORITY;
    }
    if (args->tags) {
        s.attrs.tags = a.tags;
        s.which |= ARK_KEY_SET_TAGS;
    }
    if (any) {
        s.which |= ARK_KEY_SET_LIMITS;
    }
    rc = cli_edit(args, cli_set_edit, &s, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    printf(s.changed ? "Key '%s' changed in %s (%s).\n"
                     : "Key '%s' already had these attributes in %s (%s).\n",
           args->name, args->file, s.summary);
    return cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* revoke, enable, delete                                             */
/* ------------------------------------------------------------------ */

typedef struct cli_state_t {
    const cli_args_t *args;
    int enable;  /* 1 enable, 0 revoke, -1 delete */
    int changed; /* set when the file was rewritten */
} cli_state_t;

static int cli_state_edit(ark_keyring_t *ring, int *pchanged, void *baton,
                          apr_pool_t *p)
{
    cli_state_t *s = baton;
    const ark_key_t *key;

    (void)p;
    key = ark_keys_find_name(ring, s->args->name);
    if (!key) {
        ark_cli_error("no key named '%s' in %s", s->args->name, s->args->file);
        return CLI_EXIT_FAIL;
    }
    if (s->enable < 0) {
        ark_keys_remove(ring, s->args->name);
        *pchanged = 1;
    }
    else if (key->enabled != s->enable) {
        ark_keys_set_enabled(ring, s->args->name, s->enable);
        *pchanged = 1;
    }
    s->changed = *pchanged;
    return CLI_EXIT_OK;
}

static int cli_set_state(const cli_args_t *args, int enable, apr_pool_t *p)
{
    cli_state_t s;
    const char *done;
    int rc;

    s.args = args;
    s.enable = enable;
    s.changed = 0;
    rc = cli_edit(args, cli_state_edit, &s, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    if (enable < 0) {
        printf("Key '%s' deleted from %s.\n", args->name, args->file);
    }
    else {
        done = enable ? "enabled" : "revoked";
        printf(s.changed ? "Key '%s' %s in %s.\n"
                         : "Key '%s' was already %s in %s.\n",
               args->name, done, args->file);
    }
    return cli_flush_stdout();
}

static int cli_revoke(const cli_args_t *args, apr_pool_t *p)
{
    return cli_set_state(args, 0, p);
}

static int cli_enable(const cli_args_t *args, apr_pool_t *p)
{
    return cli_set_state(args, 1, p);
}

static int cli_delete(const cli_args_t *args, apr_pool_t *p)
{
    return cli_set_state(args, -1, p);
}

/* ------------------------------------------------------------------ */
/* list                                                               */
/* ------------------------------------------------------------------ */

/* Display width of UTF-8 text: counts all but continuation bytes. */
static int cli_width(const char *s)
{
    int w = 0;

    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80) {
            w++;
        }
    }
    return w;
}

/* Print rows of ncols cells as columns two spaces apart. */
static int cli_table(const char ***rows, int nrows, int ncols, apr_pool_t *p)
{
    int *width = apr_pcalloc(p, (apr_size_t)ncols * sizeof(int));
    int i, c, w, last;

    for (c = 0; c < ncols; c++) {
        for (i = 0; i < nrows; i++) {
            w = cli_width(rows[i][c]);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (i = 0; i < nrows; i++) {
        /* No padding after the last cell that has text. */
        for (last = ncols - 1; last > 0 && !*rows[i][last]; last--) {
        }
        for (c = 0; c <= last; c++) {
            fputs(rows[i][c], stdout);
            if (c < last) {
                printf("%*s", width[c] - cli_width(rows[i][c]) + 2, "");
            }
        }
        fputc('\n', stdout);
    }
    return cli_flush_stdout();
}

/* "sk-ark-…wZ5U", or "-" without a hint. */
static const char *cli_hint_text(const ark_key_t *k, apr_pool_t *p)
{
    return k->hint ? apr_pstrcat(p, ARK_KEY_SECRET_PREFIX "\xE2\x80\xA6",
                                 k->hint, NULL)
                   : "-";
}

#define CLI_COLS 9

static int cli_list(const cli_args_t *args, apr_pool_t *p)
{
    static const char *head[CLI_COLS] = {"NAME",     "TENANT",  "STATE",
                                         "PRIORITY", "MODELS",  "TAGS",
                                         "HINT",     "CREATED", "LIMITS"};
    ark_keyring_t *ring;
    const ark_key_t *k;
    const char ***rows;
    int n, i, rc;

    rc = cli_load(&ring, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    n = ark_keys_count(ring);
    rows = apr_pcalloc(p, (apr_size_t)(n + 1) * sizeof(*rows));
    rows[0] = head;
    for (i = 0; i < n; i++) {
        k = ark_keys_at(ring, i);
        rows[i + 1] = apr_pcalloc(p, CLI_COLS * sizeof(const char *));
        rows[i + 1][0] = k->name;
        rows[i + 1][1] = k->tenant;
        rows[i + 1][2] = k->enabled ? "enabled" : "revoked";
        rows[i + 1][3] = ark_priority_name((ark_priority_t)k->priority);
        rows[i + 1][4] = cli_models_text(k, p);
        rows[i + 1][5] = cli_tags_text(k->tags, p);
        rows[i + 1][6] = cli_hint_text(k, p);
        rows[i + 1][7] = k->created ? k->created : "-";
        rows[i + 1][8] = cli_limits_text(&k->limits, k->provider_limits, p);
    }
    return cli_table(rows, n + 1, CLI_COLS, p);
}

/* ------------------------------------------------------------------ */
/* verify, check                                                      */
/* ------------------------------------------------------------------ */

static int cli_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Read one secret from stdin into buf (CLI_SECRET_INPUT_MAX + 1 bytes),
 * without echo on a terminal. Sets *ps and *plen to the trimmed secret
 * inside buf. */
static int cli_read_secret(const char **ps, apr_size_t *plen, char *buf)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO), echo_off = 0, rc = CLI_EXIT_OK;
    apr_size_t len = 0, start = 0;
    ssize_t n;

    if (tty) {
        fputs("Secret: ", stderr);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
        }
    }
    while (len <= CLI_SECRET_INPUT_MAX) {
        n = read(STDIN_FILENO, buf + len, CLI_SECRET_INPUT_MAX + 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ark_cli_error("cannot read standard input: %s", strerror(errno));
            rc = CLI_EXIT_FAIL;
            break;
        }
        if (n == 0) {
            break;
        }
        len += (apr_size_t)n;
        if (tty && memchr(buf + len - (apr_size_t)n, '\n', (apr_size_t)n)) {
            break;
        }
    }
    if (echo_off) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    }
    if (tty) {
        fputc('\n', stderr);
    }
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    if (len > CLI_SECRET_INPUT_MAX) {
        ark_cli_error("input is longer than %d bytes", CLI_SECRET_INPUT_MAX);
        return CLI_EXIT_FAIL;
    }
    while (start < len && cli_is_blank(buf[start])) {
        start++;
    }
    while (len > start && cli_is_blank(buf[len - 1])) {
        len--;
    }
    /* Accept a pasted "Bearer sk-ark-..." too. */
    if (len - start > 7 && !strncasecmp(buf + start, "Bearer ", 7)) {
        start += 7;
        while (start < len && cli_is_blank(buf[start])) {
            start++;
        }
    }
    if (start == len) {
        ark_cli_error("no secret on standard input");
        return CLI_EXIT_FAIL;
    }
    if (memchr(buf + start, '\n', len - start)) {
        ark_cli_error("expected one secret on one line");
        return CLI_EXIT_FAIL;
    }
    *ps = buf + start;
    *plen = len - start;
    return CLI_EXIT_OK;
}

static int cli_verify(const cli_args_t *args, apr_pool_t *p)
{
    ark_keyring_t *ring;
    const ark_key_t *k;
    const char *secret;
    char *buf;
    apr_size_t len;
    int rc, wellformed, previous;

    rc = cli_load(&ring, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    buf = apr_palloc(p, CLI_SECRET_INPUT_MAX + 1);
    rc = cli_read_secret(&secret, &len, buf);
    if (rc != CLI_EXIT_OK) {
        OPENSSL_cleanse(buf, CLI_SECRET_INPUT_MAX + 1);
        return rc;
    }
    k = ark_keys_lookup_ex(ring, secret, len, &previous);
    wellformed = ark_keys_secret_wellformed(secret, len);
    OPENSSL_cleanse(buf, CLI_SECRET_INPUT_MAX + 1);
    if (!k) {
        ark_cli_error("no key in %s matches this secret%s", args->file,
                  wellformed ? ""
                             : " (and it does not look like an Ark "
                               "key: expected '" ARK_KEY_SECRET_PREFIX
                               "' and 43 more characters)");
        return CLI_EXIT_FAIL;
    }
    printf("name=%s tenant=%s state=%s models=%s priority=%s tags=%s%s\n",
           k->name, k->tenant, k->enabled ? "enabled" : "revoked",
           cli_models_text(k, p),
           ark_priority_name((ark_priority_t)k->priority),
           cli_tags_text(k->tags, p),
           !previous ? ""
           : apr_time_now() < k->previous_until
               ? apr_pstrcat(p, " secret=previous until=",
                             cli_stamp(k->previous_until, p), NULL)
               : apr_pstrcat(p, " secret=previous expired=",
                             cli_stamp(k->previous_until, p), NULL));
    return cli_flush_stdout();
}

static int cli_check(const cli_args_t *args, apr_pool_t *p)
{
    ark_keyring_t *ring;
    const char *why;
    int rc, i, n, t, enabled = 0;

    /* as httpd does: a file others may read or write is refused */
    if (ark_keys_check_mode(args->file, &why, p) == APR_EACCES) {
        ark_cli_error("%s", why);
        return CLI_EXIT_FAIL;
    }
    rc = cli_load(&ring, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    n = ark_keys_count(ring);
    for (i = 0; i < n; i++) {
        enabled += ark_keys_at(ring, i)->enabled;
    }
    t = ark_keys_tenant_count(ring);
    printf("%s: OK, %d key%s (%d enabled, %d revoked)%s\n", args->file, n,
           n == 1 ? "" : "s", enabled, n - enabled,
           t ? apr_psprintf(p, ", %d tenant line%s", t, t == 1 ? "" : "s")
             : "");
    return cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* show                                                               */
/* ------------------------------------------------------------------ */

/* One limit as text: the number or amount, or "-" for none. */
static const char *cli_lim_text(const ark_limits_t *l, int i, apr_pool_t *p)
{
    apr_int64_t v = cli_lim_get(l, i);

    if (!v) {
        return "-";
    }
    return i >= CLI_LIM_BUDGET_DAY ? ark_money_format(v, p)
                                   : apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

/* {"rpm": 60, "tpm": null, ..., "budget_day": "25", ...}: null for no
 * limit, budgets as exact decimal strings. */
static json_t *cli_limits_json(const ark_limits_t *l, apr_pool_t *p)
{
    json_t *o = json_object();
    apr_int64_t v;
    int i;

    for (i = 0; i < CLI_LIM_COUNT; i++) {
        v = cli_lim_get(l, i);
        json_object_set_new(o, cli_lim_names[i],
                            !v ? json_null()
                            : i >= CLI_LIM_BUDGET_DAY
                                ? json_string(ark_money_format(v, p))
                                : json_integer((json_int_t)v));
    }
    return o;
}

static json_t *cli_count_json(apr_int64_t v)
{
    return v ? json_integer((json_int_t)v) : json_null();
}

static json_t *cli_plimits_json(const apr_array_header_t *pls)
{
    const ark_provider_limit_t *pl;
    json_t *a = json_array();
    int i;

    for (i = 0; pls && i < pls->nelts; i++) {
        pl = &APR_ARRAY_IDX(pls, i, ark_provider_limit_t);
        json_array_append_new(a, json_pack("{s:s, s:o, s:o}", "provider",
                                           pl->provider, "rpm",
                                           cli_count_json(pl->rpm), "tpm",
                                           cli_count_json(pl->tpm)));
    }
    return a;
}

/* Print a JSON document on stdout; takes the reference. */
static int cli_json_print(json_t *doc)
{
    char *text;

    if (!doc) {
        ark_cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    text = json_dumps(doc, JSON_INDENT(2));
    json_decref(doc);
    if (!text) {
        ark_cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    fputs(text, stdout);
    fputc('\n', stdout);
    free(text);
    return cli_flush_stdout();
}

/* The state of a rotated-out secret, for people. */
static const char *cli_previous_text(const ark_key_t *k, apr_time_t now,
                                     apr_pool_t *p)
{
    if (!k->has_previous) {
        return "-";
    }
    if (now < k->previous_until) {
        return apr_psprintf(p, "%s (the old secret works %s more)",
                            cli_stamp(k->previous_until, p),
                            ark_duration_format(k->previous_until - now, p));
    }
    return apr_psprintf(p, "%s (expired: the old secret no longer works)",
                        cli_stamp(k->previous_until, p));
}

/* Append a label/value row to a two-column table. */
static void cli_row2(apr_array_header_t *rows, const char *label,
                     const char *value, apr_pool_t *p)
{
    const char **row = apr_palloc(p, 2 * sizeof(*row));

    row[0] = label;
    row[1] = value;
    APR_ARRAY_PUSH(rows, const char **) = row;
}

static int cli_show_json(const ark_key_t *k, const ark_tenant_t *t,
                         apr_time_t now, apr_pool_t *p)
{
    json_t *doc, *models, *tags;
    int i;

    models = json_array();
    for (i = 0; !k->all_models && i < k->models->nelts; i++) {
        json_array_append_new(
            models, json_string(APR_ARRAY_IDX(k->models, i, const char *)));
    }
    tags = json_array();
    for (i = 0; k->tags && i < k->tags->nelts; i++) {
        const ark_tag_t *tag = &APR_ARRAY_IDX(k->tags, i, ark_tag_t);

        json_array_append_new(tags, json_pack("{s:s, s:s}", "key", tag->key,
                                              "value", tag->value));
    }
    doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
        "name", k->name, "tenant", k->tenant, "state",
        k->enabled ? "enabled" : "revoked", "priority",
        ark_priority_name((ark_priority_t)k->priority), "models",
        k->all_models ? json_string("*") : models, "tags", tags, "hint",
        k->hint ? json_string(k->hint) : json_null(), "created",
        k->created ? json_string(k->created) : json_null(), "limits",
        cli_limits_json(&k->limits, p), "provider_limits",
        cli_plimits_json(k->provider_limits), "previous_until",
        k->has_previous ? json_string(cli_stamp(k->previous_until, p))
                        : json_null(),
        "previous_active",
        json_boolean(k->has_previous && now < k->previous_until),
        "tenant_limits", t ? cli_limits_json(&t->limits, p) : json_null());
    if (k->all_models) {
        json_decref(models);
    }
    return cli_json_print(doc);
}

static int cli_show(const cli_args_t *args, apr_pool_t *p)
{
    ark_keyring_t *ring;
    const ark_key_t *k;
    const ark_tenant_t *t;
    const ark_provider_limit_t *pl;
    apr_array_header_t *rows;
    apr_time_t now = apr_time_now();
    int i, rc;

    rc = cli_load(&ring, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    k = ark_keys_find_name(ring, args->name);
    if (!k) {
        ark_cli_error("no key named '%s' in %s", args->name, args->file);
        return CLI_EXIT_FAIL;
    }
    t = ark_keys_tenant(ring, k->tenant);
    if (args->json) {
        return cli_show_json(k, t, now, p);
    }
    rows = apr_array_make(p, 24, sizeof(const char **));
    cli_row2(rows, "name", k->name, p);
    cli_row2(rows, "tenant", k->tenant, p);
    cli_row2(rows, "state", k->enabled ? "enabled" : "revoked", p);
    cli_row2(rows, "priority", ark_priority_name((ark_priority_t)k->priority),
             p);
    cli_row2(rows, "models", cli_models_text(k, p), p);
    cli_row2(rows, "tags", cli_tags_text(k->tags, p), p);
    cli_row2(rows, "hint", cli_hint_text(k, p), p);
    cli_row2(rows, "created", k->created ? k->created : "-", p);
    for (i = 0; i < CLI_LIM_COUNT; i++) {
        cli_row2(rows, cli_lim_names[i], cli_lim_text(&k->limits, i, p), p);
    }
    for (i = 0; k->provider_limits && i < k->provider_limits->nelts; i++) {
        pl = &APR_ARRAY_IDX(k->provider_limits, i, ark_provider_limit_t);
        cli_row2(rows, apr_pstrcat(p, "rpm@", pl->provider, NULL),
                 pl->rpm ? apr_psprintf(p, "%" APR_INT64_T_FMT, pl->rpm) : "-",
                 p);
        cli_row2(rows, apr_pstrcat(p, "tpm@", pl->provider, NULL),
                 pl->tpm ? apr_psprintf(p, "%" APR_INT64_T_FMT, pl->tpm) : "-",
                 p);
    }
    cli_row2(rows, "previous_until", cli_previous_text(k, now, p), p);
    cli_row2(rows, "tenant limits",
             t ? cli_limits_text(&t->limits, NULL, p) : "- (no tenant line)",
             p);
    return cli_table((const char ***)rows->elts, rows->nelts, 2, p);
}

/* ------------------------------------------------------------------ */
/* tenant                                                             */
/* ------------------------------------------------------------------ */

static int cli_limits_same(const ark_limits_t *a, const ark_limits_t *b)
{
    int i;

    for (i = 0; i < CLI_LIM_COUNT; i++) {
        if (cli_lim_get(a, i) != cli_lim_get(b, i)) {
            return 0;
        }
    }
    return 1;
}

/* Keys per tenant: tenant name -> int * (pool memory). */
static apr_hash_t *cli_tenant_keys(const ark_keyring_t *ring, apr_pool_t *p)
{
    apr_hash_t *h = apr_hash_make(p);
    const ark_key_t *k;
    int i, *n;

    for (i = 0; i < ark_keys_count(ring); i++) {
        k = ark_keys_at(ring, i);
        n = apr_hash_get(h, k->tenant, APR_HASH_KEY_STRING);
        if (!n) {
            n = apr_pcalloc(p, sizeof(*n));
            apr_hash_set(h, k->tenant, APR_HASH_KEY_STRING, n);
        }
        (*n)++;
    }
    return h;
}

typedef struct cli_tenant_t {
    const cli_args_t *args;
    cli_limits_t limits;
    int changed;
    int nkeys;           /* keys of the tenant */
    const char *summary; /* its limits after the edit */
} cli_tenant_t;

static int cli_tenant_edit(ark_keyring_t *ring, int *pchanged, void *baton,
                           apr_pool_t *p)
{
    cli_tenant_t *te = baton;
    const ark_tenant_t *t;
    ark_limits_t before, after;
    const char *err;
    int *n;

    t = ark_keys_tenant(ring, te->args->tenant);
    memset(&before, 0, sizeof(before));
    if (t) {
        before = t->limits;
    }
    cli_limits_apply(&after, &before, &te->limits);
    n = apr_hash_get(cli_tenant_keys(ring, p), te->args->tenant,
                     APR_HASH_KEY_STRING);
    te->nkeys = n ? *n : 0;
    te->summary = cli_limits_text(&after, NULL, p);
    if (cli_limits_same(&before, &after)) {
        return CLI_EXIT_OK;
    }
    if (ark_keys_set_tenant(ring, te->args->tenant, &after, &err) !=
        APR_SUCCESS) {
        ark_cli_error("cannot change tenant '%s': %s", te->args->tenant, err);
        return CLI_EXIT_FAIL;
    }
    te->changed = *pchanged = 1;
    return CLI_EXIT_OK;
}

/* Lists every tenant: those with a tenant line in file order, then those
 * that only keys name. With only, just that one. */
static int cli_tenant_list(const cli_args_t *args, const char *only,
                           apr_pool_t *p)
{
    static const char *head[] = {"TENANT",      "RPM",        "TPM",
                                 "CONCURRENCY", "BUDGET_DAY", "BUDGET_MONTH",
                                 "KEYS"};
    static const ark_limits_t none;
    ark_keyring_t *ring;
    apr_array_header_t *names, *rows;
    apr_hash_t *nkeys, *listed;
    const ark_tenant_t *t;
    const char *name, **row;
    json_t *doc = NULL;
    int i, c, rc, *n;

    rc = cli_load(&ring, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    nkeys = cli_tenant_keys(ring, p);
    listed = apr_hash_make(p);
    names = apr_array_make(p, 16, sizeof(const char *));
    for (i = 0; i < ark_keys_tenant_count(ring); i++) {
        name = ark_keys_tenant_at(ring, i)->name;
        APR_ARRAY_PUSH(names, const char *) = name;
        apr_hash_set(listed, name, APR_HASH_KEY_STRING, name);
    }
    for (i = 0; i < ark_keys_count(ring); i++) {
        name = ark_keys_at(ring, i)->tenant;
        if (!apr_hash_get(listed, name, APR_HASH_KEY_STRING)) {
            APR_ARRAY_PUSH(names, const char *) = name;
            apr_hash_set(listed, name, APR_HASH_KEY_STRING, name);
        }
    }
    if (only && !apr_hash_get(listed, only, APR_HASH_KEY_STRING)) {
        ark_cli_error("no tenant '%s' in %s (no tenant line and no key)", only,
                  args->file);
        return CLI_EXIT_FAIL;
    }
    rows = apr_array_make(p, names->nelts + 1, sizeof(const char **));
    APR_ARRAY_PUSH(rows, const char **) = head;
    if (args->json) {
        doc = json_array();
    }
    for (i = 0; i < names->nelts; i++) {
        name = APR_ARRAY_IDX(names, i, const char *);
        if (only && strcmp(only, name)) {
            continue;
        }
        t = ark_keys_tenant(ring, name);
        n = apr_hash_get(nkeys, name, APR_HASH_KEY_STRING);
        if (doc) {
            json_array_append_new(
                doc, json_pack("{s:s, s:o, s:i, s:b}", "tenant", name, "limits",
                               cli_limits_json(t ? &t->limits : &none, p),
                               "keys", n ? *n : 0, "tenant_line", t != NULL));
            continue;
        }
        row = apr_palloc(p, 7 * sizeof(*row));
        row[0] = name;
        for (c = 0; c < CLI_LIM_COUNT; c++) {
            row[c + 1] = cli_lim_text(t ? &t->limits : &none, c, p);
        }
        row[6] = apr_psprintf(p, "%d", n ? *n : 0);
        APR_ARRAY_PUSH(rows, const char **) = row;
    }
    if (doc) {
        return cli_json_print(doc);
    }
    return cli_table((const char ***)rows->elts, rows->nelts, 7, p);
}

static int cli_tenant(const cli_args_t *args, apr_pool_t *p)
{
    cli_tenant_t te;
    int rc, any;

    memset(&te, 0, sizeof(te));
    te.args = args;
    rc = cli_parse_limits(&te.limits, &any, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    if (args->tenant && !ark_keys_name_valid(args->tenant)) {
        return ark_cli_usage_error("tenant: invalid tenant; use 1-64 "
                               "characters of A-Z a-z 0-9 . _ @ -");
    }
    if (!any) {
        return cli_tenant_list(args, args->tenant, p);
    }
    if (!args->tenant) {
        return ark_cli_usage_error("tenant: limit options need -t TENANT");
    }
    if (args->json) {
        return ark_cli_usage_error("tenant: --json is for listing, not with "
                               "limit options");
    }
    rc = cli_edit(args, cli_tenant_edit, &te, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    if (!te.changed) {
        printf("Tenant '%s' already had these limits in %s (%s).\n",
               args->tenant, args->file, te.summary);
    }
    else if (!strcmp(te.summary, "-")) {
        printf("Tenant '%s' has no limits now; its line was removed from "
               "%s.\n",
               args->tenant, args->file);
    }
    else {
        printf("Tenant '%s' changed in %s (%s; %d key%s).\n", args->tenant,
               args->file, te.summary, te.nkeys, te.nkeys == 1 ? "" : "s");
    }
    return cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* rotate                                                             */
/* ------------------------------------------------------------------ */

/* "0", "90" (seconds), "30s", "15m", "24h" or "7d", at most
 * CLI_GRACE_MAX_SEC. Returns 0 if invalid. */
static int cli_duration_parse(apr_interval_time_t *pd, const char *s)
{
    apr_int64_t n = 0, mult;
    const char *c;

    for (c = s; *c >= '0' && *c <= '9'; c++) {
        n = n * 10 + (*c - '0');
        if (n > CLI_GRACE_MAX_SEC) {
            return 0;
        }
    }
    if (c == s) {
        return 0;
    }
    switch (*c) {
    case '\0':
    case 's':
        mult = 1;
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    default:
        return 0;
    }
    if (*c && c[1]) {
        return 0;
    }
    if (n * mult > CLI_GRACE_MAX_SEC) {
        return 0;
    }
    *pd = apr_time_from_sec(n * mult);
    return 1;
}

typedef struct cli_rotate_t {
    const cli_args_t *args;
    apr_time_t until;   /* the old secret works until then */
    const char *secret; /* set once the key is rotated */
    int revoked;        /* the key is revoked */
} cli_rotate_t;

static int cli_rotate_edit(ark_keyring_t *ring, int *pchanged, void *baton,
                           apr_pool_t *p)
{
    cli_rotate_t *r = baton;
    const ark_key_t *k;
    unsigned char hash[ARK_KEY_HASH_LEN];
    const char *err, *secret;
    apr_size_t len;

    k = ark_keys_find_name(ring, r->args->name);
    if (!k) {
        ark_cli_error("no key named '%s' in %s", r->args->name, r->args->file);
        return CLI_EXIT_FAIL;
    }
    if (ark_keys_secret_make(&secret, p) != APR_SUCCESS) {
        ark_cli_error("the random number generator failed");
        return CLI_EXIT_FAIL;
    }
    len = strlen(secret);
    ark_keys_hash(hash, secret, len);
    if (ark_keys_rotate(ring, r->args->name, hash,
                        secret + len - ARK_KEY_HINT_LEN, r->until,
                        &err) != APR_SUCCESS) {
        OPENSSL_cleanse((void *)secret, len);
        ark_cli_error("cannot rotate key '%s': %s", r->args->name, err);
        return CLI_EXIT_FAIL;
    }
    r->secret = secret;
    r->revoked = !k->enabled;
    *pchanged = 1;
    return CLI_EXIT_OK;
}

static int cli_rotate(const cli_args_t *args, apr_pool_t *p)
{
    cli_rotate_t r;
    apr_interval_time_t grace;
    const char *g = args->grace ? args->grace : CLI_GRACE_DEFAULT;
    int rc;

    memset(&r, 0, sizeof(r));
    r.args = args;
    if (!cli_duration_parse(&grace, g)) {
        return ark_cli_usage_error("rotate: --grace: expected a duration such as "
                               "30s, 15m, 24h or 7d (at most 366d), or 0");
    }
    r.until = apr_time_now() + grace;
    rc = cli_edit(args, cli_rotate_edit, &r, p);
    if (rc != CLI_EXIT_OK) {
        if (r.secret) {
            OPENSSL_cleanse((void *)r.secret, strlen(r.secret));
        }
        return rc;
    }
    rc = cli_print_secret(r.secret);
    if (rc != CLI_EXIT_OK) {
        ark_cli_error("the new secret of key '%s' could not be shown; rotate "
                  "the key again (ark-keys rotate -f %s %s)",
                  args->name, args->file, args->name);
        return rc;
    }
    if (grace > 0) {
        fprintf(stderr,
                "Key '%s' rotated in %s. The old secret works until %s "
                "(%s).\n",
                args->name, args->file, cli_stamp(r.until, p),
                ark_duration_format(grace, p));
    }
    else {
        fprintf(stderr,
                "Key '%s' rotated in %s. The old secret no longer works.\n",
                args->name, args->file);
    }
    fputs("Both take effect at the next graceful reload (apachectl -k "
          "graceful).\n"
          "Store this key now; it cannot be shown again.\n",
          stderr);
    if (r.revoked) {
        ark_cli_warn("key '%s' is revoked; its new secret works only after "
                 "'ark-keys enable -f %s %s'",
                 args->name, args->file, args->name);
    }
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* usage                                                              */
/* ------------------------------------------------------------------ */

/* The usage hash fields, in the order of cli_period_use_t.v. */
enum {
    CLI_UF_REQUESTS,
    CLI_UF_PROMPT,
    CLI_UF_COMPLETION,
    CLI_UF_CACHED,
    CLI_UF_SPEND,
    CLI_UF_CACHE_HITS,
    CLI_UF_SAVED,
    CLI_UF_COUNT
};

static const char *const cli_uf_names[CLI_UF_COUNT] = {
    ARK_UF_REQUESTS, ARK_UF_PROMPT,     ARK_UF_COMPLETION, ARK_UF_CACHED,
    ARK_UF_SPEND,    ARK_UF_CACHE_HITS, ARK_UF_SAVED};

typedef struct cli_period_use_t {
    char id[9]; /* "20261127" or "202611" */
    apr_int64_t v[CLI_UF_COUNT];
    apr_int64_t budget; /* nano-units; 0: none */
} cli_period_use_t;

/* Units of a GCRA bucket in use, and how long until it is full again
 * (its TAT minus now). limit 0: no limit in the keys file, so used is
 * unknown (0); the bucket may still exist under an ArkLimitDefault. */
typedef struct cli_rate_use_t {
    apr_int64_t used, limit;
    apr_interval_time_t refill;
} cli_rate_use_t;

typedef struct cli_provider_use_t {
    const char *provider;
    cli_rate_use_t rpm, tpm;
} cli_provider_use_t;

typedef struct cli_scope_use_t {
    const char *name;
    cli_period_use_t day, month;
    cli_rate_use_t rpm, tpm, inflight; /* inflight.limit: concurrency */
    apr_array_header_t *providers;     /* cli_provider_use_t; keys only */
} cli_scope_use_t;

typedef struct cli_redis_t {
    redisContext *ctx;
    const char *addr; /* as given, for messages */
} cli_redis_t;

static apr_status_t cli_redis_cleanup(void *data)
{
    redisFree(data);
    return APR_SUCCESS;
}

/* The one place hiredis failures become messages: the context's error
 * when reply is NULL, else the reply's. Never mentions the password. */
static int cli_redis_fail(const cli_redis_t *r, const redisReply *reply,
                          const char *what)
{
    if (!reply) {
        ark_cli_error("Redis at %s: %s: %s", r->addr, what,
                  r->ctx->err ? r->ctx->errstr : "no reply");
    }
    else if (reply->type == REDIS_REPLY_ERROR) {
        ark_cli_error("Redis at %s: %s: %s", r->addr, what, reply->str);
    }
    else {
        ark_cli_error("Redis at %s: %s: unexpected reply type %d", r->addr, what,
                  reply->type);
    }
    return CLI_EXIT_FAIL;
}

/* Splits --redis into a Unix socket path or host and port. */
static int cli_redis_addr(const char **ppath, const char **phost, int *pport,
                          const char *addr, apr_pool_t *p)
{
    const char *colon, *host = addr, *end;
    char *stop;
    long port = CLI_REDIS_PORT;

    *ppath = NULL;
    if (!strncmp(addr, "unix:", 5)) {
        if (!addr[5]) {
            return 0;
        }
        *ppath = addr + 5;
        return 1;
    }
    if (*addr == '[') {
        /* [IPv6]:port */
        end = strchr(addr, ']');
        if (!end || end == addr + 1 || (end[1] && end[1] != ':')) {
            return 0;
        }
        host = apr_pstrmemdup(p, addr + 1, (apr_size_t)(end - addr - 1));
        colon = end[1] ? end + 1 : NULL;
    }
    else {
        colon = strrchr(addr, ':');
        if (colon && strchr(addr, ':') != colon) {
            colon = NULL; /* a bare IPv6 address */
        }
        if (colon) {
            host = apr_pstrmemdup(p, addr, (apr_size_t)(colon - addr));
        }
    }
    if (colon) {
        errno = 0;
        port = strtol(colon + 1, &stop, 10);
        if (!colon[1] || *stop || errno || port < 1 || port > 65535) {
            return 0;
        }
    }
    if (!*host) {
        return 0;
    }
    *phost = host;
    *pport = (int)port;
    return 1;
}

/* The first line of a password file, into buf (CLI_SECRET_INPUT_MAX + 1
 * bytes). The caller cleanses buf. */
static int cli_password_read(const char **ppw, char *buf, const char *path)
{
    apr_size_t len = 0;
    ssize_t n;
    char *nl;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ark_cli_error("cannot open %s: %s", path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    while (len < CLI_SECRET_INPUT_MAX) {
        n = read(fd, buf + len, CLI_SECRET_INPUT_MAX - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ark_cli_error("cannot read %s: %s", path, strerror(errno));
            close(fd);
            return CLI_EXIT_FAIL;
        }
        if (n == 0) {
            break;
        }
        len += (apr_size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    nl = strchr(buf, '\n');
    if (nl) {
        *nl = '\0';
    }
    len = strlen(buf);
    while (len > 0 && cli_is_blank(buf[len - 1])) {
        buf[--len] = '\0';
    }
    if (!len) {
        ark_cli_error("%s: no password on its first line", path);
        return CLI_EXIT_FAIL;
    }
    *ppw = buf;
    return CLI_EXIT_OK;
}

static int cli_redis_connect(cli_redis_t *r, const cli_args_t *args,
                             apr_pool_t *p)
{
    struct timeval tv = {CLI_REDIS_TIMEOUT_SEC, 0};
    const char *path = NULL, *host = NULL, *pw;
    redisReply *reply;
    char *buf;
    int port = 0, rc;

    r->addr = args->redis ? args->redis : CLI_REDIS_DEFAULT;
    (void)cli_redis_addr(&path, &host, &port, r->addr, p);
    r->ctx = path ? redisConnectUnixWithTimeout(path, tv)
                  : redisConnectWithTimeout(host, port, tv);
    if (!r->ctx) {
        ark_cli_error("cannot connect to Redis at %s: out of memory", r->addr);
        return CLI_EXIT_FAIL;
    }
    apr_pool_cleanup_register(p, r->ctx, cli_redis_cleanup,
                              apr_pool_cleanup_null);
    if (r->ctx->err) {
        ark_cli_error("cannot connect to Redis at %s: %s", r->addr, r->ctx->errstr);
        return CLI_EXIT_FAIL;
    }
    redisSetTimeout(r->ctx, tv);
    if (!args->password_file) {
        return CLI_EXIT_OK;
    }
    buf = apr_palloc(p, CLI_SECRET_INPUT_MAX + 1);
    rc = cli_password_read(&pw, buf, args->password_file);
    if (rc == CLI_EXIT_OK) {
        reply = redisCommand(r->ctx, "AUTH %s", pw);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            rc = cli_redis_fail(r, reply, "AUTH with the password file");
        }
        if (reply) {
            freeReplyObject(reply);
        }
    }
    OPENSSL_cleanse(buf, CLI_SECRET_INPUT_MAX + 1);
    return rc;
}

/* An integer from a string or integer reply; 0 for nil or junk. */
static apr_int64_t cli_reply_int(const redisReply *reply)
{
    char *end;
    apr_int64_t v;

    if (!reply) {
        return 0;
    }
    if (reply->type == REDIS_REPLY_INTEGER) {
        return (apr_int64_t)reply->integer;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        return 0;
    }
    v = apr_strtoi64(reply->str, &end, 10);
    return *end ? 0 : v;
}

static apr_status_t cli_reply_cleanup(void *data)
{
    freeReplyObject(data);
    return APR_SUCCESS;
}

/* Runs a command given as words and checks the reply's type (a string
 * may also be nil); *preply is freed with p. */
static int cli_redis_run(redisReply **preply, cli_redis_t *r, int expect,
                         const char *what, apr_pool_t *p, int argc,
                         const char **argv)
{
    redisReply *reply;

    reply = redisCommandArgv(r->ctx, argc, argv, NULL);
    if (!reply ||
        (reply->type != expect &&
         !(expect == REDIS_REPLY_STRING && reply->type == REDIS_REPLY_NIL))) {
        cli_redis_fail(r, reply, what);
        if (reply) {
            freeReplyObject(reply);
        }
        return CLI_EXIT_FAIL;
    }
    apr_pool_cleanup_register(p, reply, cli_reply_cleanup,
                              apr_pool_cleanup_null);
    *preply = reply;
    return CLI_EXIT_OK;
}

/* The usage hash of a scope and period: HMGET of the ARK_UF_* fields. */
static int cli_usage_period(cli_period_use_t *u, cli_redis_t *r,
                            const char *prefix, char scope, const char *name,
                            ark_period_t period, apr_time_t now,
                            apr_int64_t budget, apr_pool_t *p)
{
    const char *argv[2 + CLI_UF_COUNT];
    redisReply *reply;
    int i, rc;

    ark_period_id(u->id, period, now);
    u->budget = budget;
    argv[0] = "HMGET";
    argv[1] = ark_rkey_usage(p, prefix, scope, name, period, now);
    for (i = 0; i < CLI_UF_COUNT; i++) {
        argv[2 + i] = cli_uf_names[i];
    }
    rc = cli_redis_run(&reply, r, REDIS_REPLY_ARRAY, "HMGET", p,
                       2 + CLI_UF_COUNT, argv);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    for (i = 0; i < CLI_UF_COUNT; i++) {
        u->v[i] =
            (size_t)i < reply->elements ? cli_reply_int(reply->element[i]) : 0;
    }
    return CLI_EXIT_OK;
}

/* A GCRA bucket ("rpm", "tpm", "p:<provider>:rpm", ...): GET its TAT. */
static int cli_usage_rate(cli_rate_use_t *u, cli_redis_t *r, const char *prefix,
                          char scope, const char *name, const char *what,
                          apr_int64_t limit, apr_time_t now, apr_pool_t *p)
{
    const char *argv[2];
    redisReply *reply;
    apr_int64_t tat;
    int rc;

    argv[0] = "GET";
    argv[1] = ark_rkey(p, prefix, scope, name, what);
    rc = cli_redis_run(&reply, r, REDIS_REPLY_STRING, "GET", p, 2, argv);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    tat = cli_reply_int(reply);
    u->limit = limit;
    u->used = ark_gcra_used(tat, now, limit, CLI_RATE_PERIOD);
    u->refill = tat > now ? tat - now : 0;
    if (u->refill > CLI_RATE_PERIOD) {
        u->refill = CLI_RATE_PERIOD; /* as ark_gcra_used clamps it */
    }
    return CLI_EXIT_OK;
}

/* Requests in flight: leases in the ZSET scored by expiry after now. */
static int cli_usage_inflight(cli_rate_use_t *u, cli_redis_t *r,
                              const char *prefix, char scope, const char *name,
                              apr_int64_t limit, apr_time_t now, apr_pool_t *p)
{
    const char *argv[4];
    redisReply *reply;
    int rc;

    argv[0] = "ZCOUNT";
    argv[1] = ark_rkey(p, prefix, scope, name, "inflight");
    argv[2] = apr_psprintf(p, "(%" APR_TIME_T_FMT, now);
    argv[3] = "+inf";
    rc = cli_redis_run(&reply, r, REDIS_REPLY_INTEGER, "ZCOUNT", p, 4, argv);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    u->used = cli_reply_int(reply);
    u->limit = limit;
    return CLI_EXIT_OK;
}

static int cli_usage_scope(cli_scope_use_t *u, cli_redis_t *r,
                           const char *prefix, char scope, const char *name,
                           const ark_limits_t *l, const apr_array_header_t *pls,
                           apr_time_t now, apr_pool_t *p)
{
    const ark_provider_limit_t *pl;
    cli_provider_use_t *pu;
    int i, rc;

    u->name = name;
    rc = cli_usage_period(&u->day, r, prefix, scope, name, ARK_PERIOD_DAY, now,
                          l->budget_day, p);
    if (rc == CLI_EXIT_OK) {
        rc = cli_usage_period(&u->month, r, prefix, scope, name,
                              ARK_PERIOD_MONTH, now, l->budget_month, p);
    }
    if (rc == CLI_EXIT_OK) {
        rc = cli_usage_rate(&u->rpm, r, prefix, scope, name, "rpm", l->rpm, now,
                            p);
    }
    if (rc == CLI_EXIT_OK) {
        rc = cli_usage_rate(&u->tpm, r, prefix, scope, name, "tpm", l->tpm, now,
                            p);
    }
    if (rc == CLI_EXIT_OK) {
        rc = cli_usage_inflight(&u->inflight, r, prefix, scope, name,
                                l->concurrency, now, p);
    }
    u->providers = apr_array_make(p, 2, sizeof(cli_provider_use_t));
    for (i = 0; rc == CLI_EXIT_OK && pls && i < pls->nelts; i++) {
        pl = &APR_ARRAY_IDX(pls, i, ark_provider_limit_t);
        pu = apr_array_push(u->providers);
        pu->provider = pl->provider;
        rc = cli_usage_rate(&pu->rpm, r, prefix, scope, name,
                            apr_pstrcat(p, "p:", pl->provider, ":rpm", NULL),
                            pl->rpm, now, p);
        if (rc == CLI_EXIT_OK) {
            rc =
                cli_usage_rate(&pu->tpm, r, prefix, scope, name,
                               apr_pstrcat(p, "p:", pl->provider, ":tpm", NULL),
                               pl->tpm, now, p);
        }
    }
    return rc;
}

static double cli_pct(apr_int64_t used, apr_int64_t limit)
{
    return limit > 0 ? (double)used * 100.0 / (double)limit : 0.0;
}

/* "12 of 60 (20.0%)" with a limit. Without one, the count when
 * count_always (requests in flight are always counted); else, for a
 * bucket kept under a limit the keys file does not know (ArkLimitDefault),
 * when it is full again; else "-". */
static const char *cli_rate_text(const cli_rate_use_t *u, int count_always,
                                 apr_pool_t *p)
{
    if (u->limit > 0) {
        return apr_psprintf(
            p, "%" APR_INT64_T_FMT " of %" APR_INT64_T_FMT " (%.1f%%)", u->used,
            u->limit, cli_pct(u->used, u->limit));
    }
    if (count_always) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT, u->used);
    }
    if (u->refill > 0) {
        return apr_psprintf(p, "? (full again in %s)",
                            ark_duration_format(u->refill, p));
    }
    return "-";
}

static const char *cli_spend_text(const cli_period_use_t *u, apr_pool_t *p)
{
    const char *spend = ark_money_format(u->v[CLI_UF_SPEND], p);

    if (u->budget > 0) {
        return apr_psprintf(p, "%s of %s (%.1f%%)", spend,
                            ark_money_format(u->budget, p),
                            cli_pct(u->v[CLI_UF_SPEND], u->budget));
    }
    return spend;
}

static json_t *cli_rate_json(const cli_rate_use_t *u, int count_always)
{
    if (count_always) {
        /* requests in flight: a count, not a bucket */
        return u->limit > 0
                   ? json_pack("{s:I, s:I, s:f}", "used", (json_int_t)u->used,
                               "limit", (json_int_t)u->limit, "used_pct",
                               cli_pct(u->used, u->limit))
                   : json_pack("{s:I, s:n, s:n}", "used", (json_int_t)u->used,
                               "limit", "used_pct");
    }
    if (u->limit > 0) {
        return json_pack("{s:I, s:I, s:f, s:I}", "used", (json_int_t)u->used,
                         "limit", (json_int_t)u->limit, "used_pct",
                         cli_pct(u->used, u->limit), "refill_us",
                         (json_int_t)u->refill);
    }
    return json_pack("{s:n, s:n, s:n, s:I}", "used", "limit", "used_pct",
                     "refill_us", (json_int_t)u->refill);
}

static json_t *cli_period_json(const cli_period_use_t *u, apr_pool_t *p)
{
    json_t *o = json_object();
    int i;

    json_object_set_new(o, "period", json_string(u->id));
    for (i = 0; i < CLI_UF_COUNT; i++) {
        json_object_set_new(o, cli_uf_names[i],
                            json_integer((json_int_t)u->v[i]));
    }
    json_object_set_new(o, "spend",
                        json_string(ark_money_format(u->v[CLI_UF_SPEND], p)));
    json_object_set_new(o, "saved",
                        json_string(ark_money_format(u->v[CLI_UF_SAVED], p)));
    json_object_set_new(o, "budget",
                        u->budget > 0
                            ? json_string(ark_money_format(u->budget, p))
                            : json_null());
    json_object_set_new(o, "budget_nano",
                        u->budget > 0 ? json_integer((json_int_t)u->budget)
                                      : json_null());
    json_object_set_new(o, "budget_used_pct",
                        u->budget > 0
                            ? json_real(cli_pct(u->v[CLI_UF_SPEND], u->budget))
                            : json_null());
    return o;
}

static json_t *cli_scope_json(const cli_scope_use_t *u, apr_pool_t *p)
{
    const cli_provider_use_t *pu;
    json_t *o, *providers;
    int i;

    o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "name", u->name, "rpm",
                  cli_rate_json(&u->rpm, 0), "tpm", cli_rate_json(&u->tpm, 0),
                  "inflight", cli_rate_json(&u->inflight, 1), "day",
                  cli_period_json(&u->day, p), "month",
                  cli_period_json(&u->month, p));
    providers = json_array();
    for (i = 0; i < u->providers->nelts; i++) {
        pu = &APR_ARRAY_IDX(u->providers, i, cli_provider_use_t);
        json_array_append_new(
            providers, json_pack("{s:s, s:o, s:o}", "provider", pu->provider,
                                 "rpm", cli_rate_json(&pu->rpm, 0), "tpm",
                                 cli_rate_json(&pu->tpm, 0)));
    }
    json_object_set_new(o, "providers", providers);
    return o;
}

/* A row of the usage table: label, key value, tenant value. */
static void cli_row3(apr_array_header_t *rows, const char *label, const char *k,
                     const char *t, apr_pool_t *p)
{
    const char **row = apr_palloc(p, 3 * sizeof(*row));

    row[0] = label;
    row[1] = k;
    row[2] = t;
    APR_ARRAY_PUSH(rows, const char **) = row;
}

static const char *cli_num(apr_int64_t v, apr_pool_t *p)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

static void cli_period_rows(apr_array_header_t *rows, const char *title,
                            const cli_period_use_t *k,
                            const cli_period_use_t *t, apr_pool_t *p)
{
    static const char *const labels[CLI_UF_COUNT] = {
        "  requests",          "  prompt tokens", "  completion tokens",
        "  cached tokens",     "  spend",         "  cache hits",
        "  saved by the cache"};
    int i;

    cli_row3(rows, title, "", "", p);
    for (i = 0; i < CLI_UF_COUNT; i++) {
        if (i == CLI_UF_SPEND) {
            cli_row3(rows, labels[i], cli_spend_text(k, p),
                     cli_spend_text(t, p), p);
        }
        else if (i == CLI_UF_SAVED) {
            cli_row3(rows, labels[i], ark_money_format(k->v[i], p),
                     ark_money_format(t->v[i], p), p);
        }
        else {
            cli_row3(rows, labels[i], cli_num(k->v[i], p), cli_num(t->v[i], p),
                     p);
        }
    }
}

static int cli_usage_print(const cli_scope_use_t *ku, const cli_scope_use_t *tu,
                           const cli_args_t *args, const char *prefix,
                           apr_time_t now, apr_pool_t *p)
{
    const cli_provider_use_t *pu;
    apr_array_header_t *rows;
    const char *d = ku->day.id, *m = ku->month.id;
    const char *redis = args->redis ? args->redis : CLI_REDIS_DEFAULT;
    int i;

    if (args->json) {
        return cli_json_print(json_pack(
            "{s:s, s:I, s:s, s:s, s:o, s:o}", "time", cli_stamp(now, p),
            "time_us", (json_int_t)now, "redis", redis, "prefix", prefix, "key",
            cli_scope_json(ku, p), "tenant", cli_scope_json(tu, p)));
    }
    printf("Usage of key '%s' (tenant '%s') at %s, from Redis %s\n\n", ku->name,
           tu->name, cli_stamp(now, p), redis);
    rows = apr_array_make(p, 32, sizeof(const char **));
    cli_row3(rows, "", apr_pstrcat(p, "key ", ku->name, NULL),
             apr_pstrcat(p, "tenant ", tu->name, NULL), p);
    cli_row3(rows, "rpm in use", cli_rate_text(&ku->rpm, 0, p),
             cli_rate_text(&tu->rpm, 0, p), p);
    cli_row3(rows, "tpm in use", cli_rate_text(&ku->tpm, 0, p),
             cli_rate_text(&tu->tpm, 0, p), p);
    cli_row3(rows, "in flight", cli_rate_text(&ku->inflight, 1, p),
             cli_rate_text(&tu->inflight, 1, p), p);
    for (i = 0; i < ku->providers->nelts; i++) {
        pu = &APR_ARRAY_IDX(ku->providers, i, cli_provider_use_t);
        cli_row3(rows, apr_psprintf(p, "rpm@%s in use", pu->provider),
                 cli_rate_text(&pu->rpm, 0, p), "", p);
        cli_row3(rows, apr_psprintf(p, "tpm@%s in use", pu->provider),
                 cli_rate_text(&pu->tpm, 0, p), "", p);
    }
    cli_period_rows(
        rows, apr_psprintf(p, "today (%.4s-%.2s-%.2s UTC)", d, d + 4, d + 6),
        &ku->day, &tu->day, p);
    cli_period_rows(rows, apr_psprintf(p, "this month (%.4s-%.2s)", m, m + 4),
                    &ku->month, &tu->month, p);
    return cli_table((const char ***)rows->elts, rows->nelts, 3, p);
}

static int cli_usage_show(const cli_args_t *args, apr_pool_t *p)
{
    static const ark_limits_t none;
    ark_keyring_t *ring;
    const ark_key_t *k;
    const ark_tenant_t *t;
    const char *prefix = args->prefix ? args->prefix : CLI_PREFIX_DEFAULT;
    const char *path, *host, *argv[1];
    cli_scope_use_t ku, tu;
    cli_redis_t r;
    redisReply *reply;
    apr_time_t now;
    int port, rc;

    if (!cli_redis_addr(&path, &host, &port,
                        args->redis ? args->redis : CLI_REDIS_DEFAULT, p)) {
        return ark_cli_usage_error("usage: --redis: expected HOST:PORT, "
                               "[IPV6]:PORT or unix:/PATH");
    }
    rc = cli_load(&ring, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    k = ark_keys_find_name(ring, args->name);
    if (!k) {
        ark_cli_error("no key named '%s' in %s", args->name, args->file);
        return CLI_EXIT_FAIL;
    }
    t = ark_keys_tenant(ring, k->tenant);
    memset(&r, 0, sizeof(r));
    rc = cli_redis_connect(&r, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    /* Redis's clock, the one mod_ark's scripts use. */
    argv[0] = "TIME";
    rc = cli_redis_run(&reply, &r, REDIS_REPLY_ARRAY, "TIME", p, 1, argv);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    if (reply->elements != 2) {
        return cli_redis_fail(&r, reply, "TIME");
    }
    now = apr_time_from_sec(cli_reply_int(reply->element[0])) +
          cli_reply_int(reply->element[1]);
    memset(&ku, 0, sizeof(ku));
    memset(&tu, 0, sizeof(tu));
    rc = cli_usage_scope(&ku, &r, prefix, ARK_SCOPE_KEY, k->name, &k->limits,
                         k->provider_limits, now, p);
    if (rc == CLI_EXIT_OK) {
        rc = cli_usage_scope(&tu, &r, prefix, ARK_SCOPE_TENANT, k->tenant,
                             t ? &t->limits : &none, NULL, now, p);
    }
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    return cli_usage_print(&ku, &tu, args, prefix, now, p);
}

/* ------------------------------------------------------------------ */
/* Arguments                                                          */
/* ------------------------------------------------------------------ */

static const cli_cmd_t cli_cmds[] = {
    {"create", "cfntmpT", CLI_L_KEY_LIMITS, 0, cli_create},
    {"set", "fntmpT", CLI_L_KEY_LIMITS, 1, cli_set},
    {"tenant", "ft", CLI_L_LIMITS | CLI_L(CLI_OPT_JSON), 0, cli_tenant},
    {"rotate", "fn", CLI_L(CLI_OPT_GRACE), 1, cli_rotate},
    {"list", "f", 0, 0, cli_list},
    {"show", "fn", CLI_L(CLI_OPT_JSON), 1, cli_show},
    {"usage", "fn", CLI_L_REDIS, 1, cli_usage_show},
    {"revoke", "fn", 0, 1, cli_revoke},
    {"enable", "fn", 0, 1, cli_enable},
    {"delete", "fn", 0, 1, cli_delete},
    {"verify", "f", 0, 0, cli_verify},
    {"check", "f", 0, 0, cli_check},
    {NULL, NULL, 0, 0, NULL}};

static const apr_getopt_option_t cli_options[] = {
    {"create", 'c', 0, "create FILE if missing"},
    {"file", 'f', 1, "the keys file"},
    {"name", 'n', 1, "key name"},
    {"tenant", 't', 1, "tenant"},
    {"models", 'm', 1, "model aliases or *"},
    {"priority", 'p', 1, "priority class"},
    {"tags", 'T', 1, "compliance tags"},
    {"rpm", CLI_OPT_RPM, 1, "requests per minute"},
    {"tpm", CLI_OPT_TPM, 1, "tokens per minute"},
    {"concurrency", CLI_OPT_CONCURRENCY, 1, "requests in flight"},
    {"budget-day", CLI_OPT_BUDGET_DAY, 1, "spend per day"},
    {"budget-month", CLI_OPT_BUDGET_MONTH, 1, "spend per month"},
    {"provider-limit", CLI_OPT_PROVIDER_LIMIT, 1, "limits towards a provider"},
    {"grace", CLI_OPT_GRACE, 1, "how long the old secret works"},
    {"redis", CLI_OPT_REDIS, 1, "Redis address"},
    {"prefix", CLI_OPT_PREFIX, 1, "Redis key prefix"},
    {"password-file", CLI_OPT_PASSWORD_FILE, 1, "Redis password file"},
    {"json", CLI_OPT_JSON, 0, "JSON output"},
    {"help", 'h', 0, "show help"},
    {NULL, 0, 0, NULL}};

/* "-t" or "--rpm", for messages. */
static const char *cli_opt_name(int opt, apr_pool_t *p)
{
    const apr_getopt_option_t *o;

    if (opt < 256) {
        return apr_psprintf(p, "-%c", opt);
    }
    for (o = cli_options; o->name; o++) {
        if (o->optch == opt) {
            return apr_pstrcat(p, "--", o->name, NULL);
        }
    }
    return "?";
}

static int cli_set_once(const char **slot, const char *value, int opt,
                        const char *cmd, apr_pool_t *p)
{
    if (*slot) {
        return ark_cli_usage_error("%s: option %s given twice", cmd,
                               cli_opt_name(opt, p));
    }
    *slot = value;
    return CLI_EXIT_OK;
}

int main(int argc, const char *const *argv)
{
    const cli_cmd_t *cmd;
    apr_getopt_t *os;
    apr_pool_t *p;
    cli_args_t args;
    const char *arg;
    int opt, rc, nargs;
    apr_status_t rv;

    if ((rc = ark_cli_start(CLI_PROG, &argc, &argv, &p)) != CLI_EXIT_OK) {
        return rc;
    }

    if (argc < 2) {
        fputs(cli_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(cli_usage, stdout);
        return cli_flush_stdout();
    }
    for (cmd = cli_cmds; cmd->name; cmd++) {
        if (!strcmp(cmd->name, argv[1])) {
            break;
        }
    }
    if (!cmd->name) {
        return ark_cli_usage_error("unknown command '%s'", argv[1]);
    }

    memset(&args, 0, sizeof(args));
    args.command = cmd->name;
    apr_getopt_init(&os, p, argc - 1, argv + 1);
    os->interleave = 1;
    os->errfn = cli_getopt_err;
    while ((rv = apr_getopt_long(os, cli_options, &opt, &arg)) == APR_SUCCESS) {
        if (opt == 'h') {
            fputs(cli_usage, stdout);
            return cli_flush_stdout();
        }
        if (opt < 256 ? !strchr(cmd->opts, opt)
                      : !(cmd->long_opts & CLI_L(opt))) {
            return ark_cli_usage_error("%s: option %s is not valid here", cmd->name,
                                   cli_opt_name(opt, p));
        }
        rc = CLI_EXIT_OK;
        switch (opt) {
        case 'c':
            args.create = 1;
            break;
        case 'f':
            rc = cli_set_once(&args.file, arg, opt, cmd->name, p);
            break;
        case 'n':
            rc = cli_set_once(&args.name, arg, opt, cmd->name, p);
            break;
        case 't':
            rc = cli_set_once(&args.tenant, arg, opt, cmd->name, p);
            break;
        case 'm':
            rc = cli_set_once(&args.models, arg, opt, cmd->name, p);
            break;
        case 'p':
            rc = cli_set_once(&args.priority, arg, opt, cmd->name, p);
            break;
        case 'T':
            rc = cli_set_once(&args.tags, arg, opt, cmd->name, p);
            break;
        case CLI_OPT_RPM:
        case CLI_OPT_TPM:
        case CLI_OPT_CONCURRENCY:
        case CLI_OPT_BUDGET_DAY:
        case CLI_OPT_BUDGET_MONTH:
            rc = cli_set_once(&args.limit[opt - CLI_OPT_RPM], arg, opt,
                              cmd->name, p);
            break;
        case CLI_OPT_PROVIDER_LIMIT:
            if (!args.plimits) {
                args.plimits = apr_array_make(p, 2, sizeof(const char *));
            }
            APR_ARRAY_PUSH(args.plimits, const char *) = arg;
            break;
        case CLI_OPT_GRACE:
            rc = cli_set_once(&args.grace, arg, opt, cmd->name, p);
            break;
        case CLI_OPT_REDIS:
            rc = cli_set_once(&args.redis, arg, opt, cmd->name, p);
            break;
        case CLI_OPT_PREFIX:
            rc = cli_set_once(&args.prefix, arg, opt, cmd->name, p);
            break;
        case CLI_OPT_PASSWORD_FILE:
            rc = cli_set_once(&args.password_file, arg, opt, cmd->name, p);
            break;
        case CLI_OPT_JSON:
            args.json = 1;
            break;
        }
        if (rc != CLI_EXIT_OK) {
            return rc;
        }
    }
    if (rv != APR_EOF) {
        /* apr_getopt has printed what was wrong. */
        fputs("Try '" CLI_PROG " --help' for more information.\n", stderr);
        return CLI_EXIT_USAGE;
    }
    if (!args.file || !*args.file) {
        return ark_cli_usage_error("%s: -f FILE is required", cmd->name);
    }
    nargs = os->argc - os->ind;
    if (cmd->name_arg) {
        /* NAME after the options, or -n NAME: one of the two. */
        if (nargs + (args.name != NULL) != 1) {
            return ark_cli_usage_error("%s: expected one key NAME after the "
                                   "options (or -n NAME)",
                                   cmd->name);
        }
        if (!args.name) {
            args.name = os->argv[os->ind];
        }
    }
    else if (nargs != 0) {
        /* Not quoted: it could be a secret typed on the command line. */
        return ark_cli_usage_error("%s: unexpected argument%s", cmd->name,
                               strcmp(cmd->name, "verify")
                                   ? ""
                                   : " (the secret is read from standard "
                                     "input)");
    }
    return cmd->run(&args, p);
}
