/* ark-keys: the command-line tool that manages an Ark keys file.
 *
 * Like htpasswd for mod_ark's virtual keys: "create" makes a random
 * secret, stores only its SHA-256, hint and creation time in the file and
 * prints the secret once; "set", "list", "revoke", "enable", "delete",
 * "verify" and "check" inspect or change the file. Parsing and writing the
 * format is ark_keys.c's job; this file does argument handling and safe file
 * replacement. An edit takes an exclusive flock on the keys file (and
 * re-checks after locking that the path still names the locked inode, as
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
#include <apr_strings.h>
#include <apr_time.h>

#include <openssl/crypto.h>

#include "ark_keys.h"
#include "ark_route.h"

#define CLI_PROG "ark-keys"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Mode of a keys file created with -c. */
#define CLI_NEW_FILE_MODE 0640

/* Times we retry when the file is replaced while we wait for its lock. */
#define CLI_LOCK_TRIES 100

/* Most bytes "verify" reads from stdin. */
#define CLI_SECRET_INPUT_MAX 4096

static const char cli_usage[] =
    "Usage: ark-keys COMMAND [OPTIONS]\n"
    "\n"
    "Manage the virtual keys file of the Ark gateway (mod_ark).\n"
    "Only SHA-256 hashes of secrets are stored; see docs/keys.md.\n"
    "\n"
    "Commands:\n"
    "  create [-c] -f FILE -n NAME [-t TENANT] [-m MODELS] [-p CLASS]\n"
    "         [-T TAGS]\n"
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
    "        Change attributes of a key; options as for create, at least\n"
    "        one. -T '' removes all tags.\n"
    "  list -f FILE\n"
    "        Show name, tenant, state, priority, models, tags, hint and\n"
    "        creation time.\n"
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
    "Options common to all commands:\n"
    "  -f, --file FILE    the keys file\n"
    "  -h, --help         show this help\n"
    "\n"
    "httpd reads the file at startup and on graceful reload\n"
    "(apachectl -k graceful); changes take effect then.\n"
    "\n"
    "Exit status: 0 success, 1 error, 2 usage error.\n";

typedef struct cli_args_t {
    const char *command;
    const char *file;
    const char *name;
    const char *tenant;
    const char *models;
    const char *priority;
    const char *tags;
    int create;
} cli_args_t;

typedef int (*cli_run_fn)(const cli_args_t *args, apr_pool_t *p);

typedef struct cli_cmd_t {
    const char *name;
    const char *opts; /* option letters the command accepts */
    int name_arg;     /* takes one positional NAME */
    cli_run_fn run;
} cli_cmd_t;

/* An edit of a parsed ring; sets *pchanged when the file must be
 * rewritten. Returns an exit code. */
typedef int (*cli_edit_fn)(ark_keyring_t *ring, int *pchanged, void *baton,
                           apr_pool_t *p);

/* ------------------------------------------------------------------ */
/* Messages                                                           */
/* ------------------------------------------------------------------ */

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void
cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs(CLI_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void
cli_warn(const char *fmt, ...)
{
    va_list ap;

    fputs(CLI_PROG ": warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs(CLI_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" CLI_PROG " --help' for more information.\n", stderr);
    return CLI_EXIT_USAGE;
}

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

static void cli_warn_mode(const char *path, const struct stat *st)
{
    if (st->st_mode & S_IROTH) {
        cli_warn("%s is readable by everyone; consider 'chmod o-r %s'", path,
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
                    cli_error("cannot set the mode of %s: %s", path,
                              strerror(errno));
                    unlink(path);
                    close(fd);
                    return CLI_EXIT_FAIL;
                }
            }
        }
        if (fd < 0) {
            if (errno == ENOENT) {
                cli_error("%s does not exist (use -c to create it)", path);
            }
            else {
                cli_error("cannot open %s: %s", path, strerror(errno));
            }
            return CLI_EXIT_FAIL;
        }
        while (flock(fd, LOCK_EX) < 0) {
            if (errno != EINTR) {
                cli_error("cannot lock %s: %s", path, strerror(errno));
                if (*pcreated) {
                    unlink(path);
                }
                close(fd);
                return CLI_EXIT_FAIL;
            }
        }
        if (fstat(fd, pst) < 0) {
            cli_error("cannot stat %s: %s", path, strerror(errno));
            close(fd);
            return CLI_EXIT_FAIL;
        }
        if (stat(path, &now) == 0 && now.st_dev == pst->st_dev &&
            now.st_ino == pst->st_ino) {
            if (!S_ISREG(pst->st_mode)) {
                cli_error("%s is not a regular file", path);
                close(fd);
                return CLI_EXIT_FAIL;
            }
            *pfd = fd;
            return CLI_EXIT_OK;
        }
        /* Replaced or removed by another ark-keys while we waited. */
        close(fd);
    }
    cli_error("cannot lock %s: it keeps being replaced", path);
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
                cli_error("%s is larger than %d bytes", path,
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
            cli_error("cannot read %s: %s", path, strerror(errno));
            return CLI_EXIT_FAIL;
        }
        if (n == 0) {
            break;
        }
        len += (apr_size_t)n;
    }
    if (len > ARK_KEYS_FILE_MAX) {
        cli_error("%s is larger than %d bytes", path, ARK_KEYS_FILE_MAX);
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
 * of st, fsync it, rename it over path, fsync the directory. */
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
        cli_error("cannot create %s: %s", tmp, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if ((st->st_uid != geteuid() || st->st_gid != getegid()) &&
        fchown(fd, st->st_uid, st->st_gid) < 0) {
        cli_warn("cannot keep the owner/group of %s (%s); the new file "
                 "belongs to you",
                 path, strerror(errno));
    }
    if (fchmod(fd, st->st_mode & 07777) < 0) {
        cli_error("cannot set the mode of %s: %s", tmp, strerror(errno));
        goto fail;
    }
    while (off < len) {
        n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            cli_error("cannot write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (apr_size_t)n;
    }
    if (fsync(fd) < 0) {
        cli_error("cannot sync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        cli_error("cannot close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        cli_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
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
    cli_warn_mode(path, &st);
    rc = cli_read_fd(&old, &len, fd, path, p);
    if (rc != CLI_EXIT_OK) {
        goto done;
    }
    if (ark_keys_parse(&ring, old, len, &err, p) != APR_SUCCESS) {
        cli_error("%s: %s", path, err);
        cli_error("not changing a file with errors; fix it first "
                  "(ark-keys check -f %s)",
                  path);
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    rc = edit(ring, &changed, baton, p);
    if (rc == CLI_EXIT_OK && changed) {
        if (ark_keys_format(&text, ring, p) != APR_SUCCESS) {
            cli_error("cannot format the keys file");
            rc = CLI_EXIT_FAIL;
            goto done;
        }
        rc = cli_write(path, text, &st, p);
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
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static int cli_flush_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("cannot write to standard output: %s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
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
        return cli_usage_error("%s: invalid tenant; use 1-64 "
                               "characters of A-Z a-z 0-9 . _ @ -",
                               args->command);
    }
    if (ark_keys_models_parse(&a->models, &a->all_models,
                              args->models ? args->models : "*", &err,
                              p) != APR_SUCCESS) {
        return cli_usage_error("%s: -m: %s", args->command, err);
    }
    a->priority = ARK_PRIO_NORMAL;
    if (args->priority) {
        a->priority = ark_priority_parse(args->priority);
        if (a->priority < 0) {
            return cli_usage_error("%s: -p: unknown priority class; use "
                                   "high, normal or low",
                                   args->command);
        }
    }
    if (ark_keys_tags_parse(&a->tags, args->tags ? args->tags : "", &err, p) !=
        APR_SUCCESS) {
        return cli_usage_error("%s: -T: %s", args->command, err);
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

static const char *cli_models_text(const ark_key_t *k, apr_pool_t *p)
{
    return k->all_models ? "*" : apr_array_pstrcat(p, k->models, ',');
}

typedef struct cli_create_t {
    const cli_args_t *args;
    cli_attrs_t attrs;
    const char *secret; /* set once the key is in the ring */
} cli_create_t;

static int cli_create_edit(ark_keyring_t *ring, int *pchanged, void *baton,
                           apr_pool_t *p)
{
    cli_create_t *c = baton;
    ark_key_t key;
    const char *err;
    apr_size_t len;
    apr_status_t rv;

    if (ark_keys_find_name(ring, c->args->name)) {
        cli_error("a key named '%s' already exists in %s", c->args->name,
                  c->args->file);
        return CLI_EXIT_FAIL;
    }
    ark_key_init(&key);
    if (ark_keys_secret_make(&c->secret, p) != APR_SUCCESS) {
        cli_error("the random number generator failed");
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
    rv = ark_keys_add(NULL, ring, &key, &err);
    if (rv != APR_SUCCESS) {
        cli_error("cannot add key '%s': %s", c->args->name, err);
        return CLI_EXIT_FAIL;
    }
    *pchanged = 1;
    return CLI_EXIT_OK;
}

static int cli_create(const cli_args_t *args, apr_pool_t *p)
{
    cli_create_t c;
    int rc;

    memset(&c, 0, sizeof(c));
    c.args = args;
    if (!args->name) {
        return cli_usage_error("create: -n NAME is required");
    }
    if (!ark_keys_name_valid(args->name)) {
        return cli_usage_error("create: invalid name; use 1-64 characters "
                               "of A-Z a-z 0-9 . _ @ -");
    }
    if (!strncmp(args->name, ARK_KEY_SECRET_PREFIX,
                 ARK_KEY_SECRET_PREFIX_LEN)) {
        return cli_usage_error("create: the name looks like a secret; "
                               "names are labels such as 'alice-laptop'");
    }
    rc = cli_parse_attrs(&c.attrs, args, p);
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
    fputs(c.secret, stdout);
    fputc('\n', stdout);
    rc = cli_flush_stdout();
    OPENSSL_cleanse((void *)c.secret, strlen(c.secret));
    if (rc != CLI_EXIT_OK) {
        cli_error("the secret of key '%s' could not be shown; delete the "
                  "key (ark-keys delete -f %s %s) and create another",
                  args->name, args->file, args->name);
        return rc;
    }
    fprintf(stderr,
            "Key '%s' added to %s (tenant %s, models %s, priority %s, "
            "tags %s).\n"
            "Store this key now; it cannot be shown again.\n",
            args->name, args->file, args->tenant ? args->tenant : args->name,
            args->models ? args->models : "*",
            ark_priority_name((ark_priority_t)c.attrs.priority),
            cli_tags_text(c.attrs.tags, p));
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* set                                                                */
/* ------------------------------------------------------------------ */

typedef struct cli_set_t {
    const cli_args_t *args;
    ark_key_t attrs;
    unsigned int which; /* ARK_KEY_SET_* */
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

    rv = ark_keys_set_attrs(&s->changed, ring, s->args->name, &s->attrs,
                            s->which, &err);
    if (rv == APR_ENOENT) {
        cli_error("no key named '%s' in %s", s->args->name, s->args->file);
        return CLI_EXIT_FAIL;
    }
    if (rv != APR_SUCCESS) {
        cli_error("cannot change key '%s': %s", s->args->name, err);
        return CLI_EXIT_FAIL;
    }
    k = ark_keys_find_name(ring, s->args->name);
    s->summary = apr_psprintf(p, "tenant %s, models %s, priority %s, tags %s",
                              k->tenant, cli_models_text(k, p),
                              ark_priority_name((ark_priority_t)k->priority),
                              cli_tags_text(k->tags, p));
    *pchanged = s->changed;
    return CLI_EXIT_OK;
}

static int cli_set(const cli_args_t *args, apr_pool_t *p)
{
    cli_set_t s;
    cli_attrs_t a;
    int rc;

    memset(&s, 0, sizeof(s));
    memset(&a, 0, sizeof(a));
    s.args = args;
    if (!args->tenant && !args->models && !args->priority && !args->tags) {
        return cli_usage_error("set: nothing to change; give at least one "
                               "of -t, -m, -p, -T");
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
        cli_error("no key named '%s' in %s", s->args->name, s->args->file);
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

#define CLI_COLS 8

static int cli_list(const cli_args_t *args, apr_pool_t *p)
{
    static const char *head[CLI_COLS] = {"NAME",     "TENANT", "STATE",
                                         "PRIORITY", "MODELS", "TAGS",
                                         "HINT",     "CREATED"};
    ark_keyring_t *ring;
    const ark_key_t *k;
    const char ***rows;
    int width[CLI_COLS];
    int n, i, c, w, rc;

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
        rows[i + 1][6] =
            k->hint ? apr_pstrcat(p, ARK_KEY_SECRET_PREFIX "\xE2\x80\xA6",
                                  k->hint, NULL)
                    : "-";
        rows[i + 1][7] = k->created ? k->created : "-";
    }
    for (c = 0; c < CLI_COLS; c++) {
        width[c] = 0;
        for (i = 0; i <= n; i++) {
            w = cli_width(rows[i][c]);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (i = 0; i <= n; i++) {
        for (c = 0; c < CLI_COLS; c++) {
            fputs(rows[i][c], stdout);
            if (c + 1 < CLI_COLS) {
                printf("%*s", width[c] - cli_width(rows[i][c]) + 2, "");
            }
        }
        fputc('\n', stdout);
    }
    return cli_flush_stdout();
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
            cli_error("cannot read standard input: %s", strerror(errno));
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
        cli_error("input is longer than %d bytes", CLI_SECRET_INPUT_MAX);
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
        cli_error("no secret on standard input");
        return CLI_EXIT_FAIL;
    }
    if (memchr(buf + start, '\n', len - start)) {
        cli_error("expected one secret on one line");
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
    int rc, wellformed;

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
    k = ark_keys_lookup(ring, secret, len);
    wellformed = ark_keys_secret_wellformed(secret, len);
    OPENSSL_cleanse(buf, CLI_SECRET_INPUT_MAX + 1);
    if (!k) {
        cli_error("no key in %s matches this secret%s", args->file,
                  wellformed ? ""
                             : " (and it does not look like an Ark "
                               "key: expected '" ARK_KEY_SECRET_PREFIX
                               "' and 43 more characters)");
        return CLI_EXIT_FAIL;
    }
    printf("name=%s tenant=%s state=%s models=%s priority=%s tags=%s\n",
           k->name, k->tenant, k->enabled ? "enabled" : "revoked",
           cli_models_text(k, p),
           ark_priority_name((ark_priority_t)k->priority),
           cli_tags_text(k->tags, p));
    return cli_flush_stdout();
}

static int cli_check(const cli_args_t *args, apr_pool_t *p)
{
    ark_keyring_t *ring;
    int rc, i, n, enabled = 0;

    rc = cli_load(&ring, args, p);
    if (rc != CLI_EXIT_OK) {
        return rc;
    }
    n = ark_keys_count(ring);
    for (i = 0; i < n; i++) {
        enabled += ark_keys_at(ring, i)->enabled;
    }
    printf("%s: OK, %d key%s (%d enabled, %d revoked)\n", args->file, n,
           n == 1 ? "" : "s", enabled, n - enabled);
    return cli_flush_stdout();
}

/* ------------------------------------------------------------------ */
/* Arguments                                                          */
/* ------------------------------------------------------------------ */

static const cli_cmd_t cli_cmds[] = {{"create", "cfntmpT", 0, cli_create},
                                     {"set", "ftmpT", 1, cli_set},
                                     {"list", "f", 0, cli_list},
                                     {"revoke", "f", 1, cli_revoke},
                                     {"enable", "f", 1, cli_enable},
                                     {"delete", "f", 1, cli_delete},
                                     {"verify", "f", 0, cli_verify},
                                     {"check", "f", 0, cli_check},
                                     {NULL, NULL, 0, NULL}};

static const apr_getopt_option_t cli_options[] = {
    {"create", 'c', 0, "create FILE if missing"},
    {"file", 'f', 1, "the keys file"},
    {"name", 'n', 1, "key name"},
    {"tenant", 't', 1, "tenant"},
    {"models", 'm', 1, "model aliases or *"},
    {"priority", 'p', 1, "priority class"},
    {"tags", 'T', 1, "compliance tags"},
    {"help", 'h', 0, "show help"},
    {NULL, 0, 0, NULL}};

static int cli_set_once(const char **slot, const char *value, int opt,
                        const char *cmd)
{
    if (*slot) {
        return cli_usage_error("%s: option -%c given twice", cmd, opt);
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

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS) {
        fputs(CLI_PROG ": cannot initialise APR\n", stderr);
        return CLI_EXIT_FAIL;
    }
    atexit(apr_terminate);
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) {
        fputs(CLI_PROG ": out of memory\n", stderr);
        return CLI_EXIT_FAIL;
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
        return cli_usage_error("unknown command '%s'", argv[1]);
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
        if (!strchr(cmd->opts, opt)) {
            return cli_usage_error("%s: option -%c is not valid here",
                                   cmd->name, opt);
        }
        rc = CLI_EXIT_OK;
        switch (opt) {
        case 'c':
            args.create = 1;
            break;
        case 'f':
            rc = cli_set_once(&args.file, arg, opt, cmd->name);
            break;
        case 'n':
            rc = cli_set_once(&args.name, arg, opt, cmd->name);
            break;
        case 't':
            rc = cli_set_once(&args.tenant, arg, opt, cmd->name);
            break;
        case 'm':
            rc = cli_set_once(&args.models, arg, opt, cmd->name);
            break;
        case 'p':
            rc = cli_set_once(&args.priority, arg, opt, cmd->name);
            break;
        case 'T':
            rc = cli_set_once(&args.tags, arg, opt, cmd->name);
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
        return cli_usage_error("%s: -f FILE is required", cmd->name);
    }
    nargs = os->argc - os->ind;
    if (cmd->name_arg) {
        if (nargs != 1) {
            return cli_usage_error("%s: expected one key NAME after the "
                                   "options",
                                   cmd->name);
        }
        args.name = os->argv[os->ind];
    }
    else if (nargs != 0) {
        /* Not quoted: it could be a secret typed on the command line. */
        return cli_usage_error("%s: unexpected argument%s", cmd->name,
                               strcmp(cmd->name, "verify")
                                   ? ""
                                   : " (the secret is read from standard "
                                     "input)");
    }
    return cmd->run(&args, p);
}
