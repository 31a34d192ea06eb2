/* ark-cached: configuration table, file parser, typed getters and the
 * network core's own keys (see cs_config.h for the file format).
 *
 * Data flow: cs_main.c creates a table, loads the file (entries carry
 * "file:line"), applies "--key value" overrides (entries carry "command
 * line (--key)"), then cs_config_core() reads the core keys and the
 * engine reads its own. Each getter marks its key as read and remembers
 * the name it was asked for; cs_config_check_unused() then walks the
 * table for entries nobody read and suggests the nearest asked-for name.
 *
 * The "read" marks and the list of asked-for names live in blocks the
 * configuration points to, so the getters can take a const pointer (the
 * engine receives the configuration as const).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cs_common.h"
#include "cs_config.h"
#include "cs_resp.h"

/* Longest key name. */
#define CS_CONFIG_KEY_MAX 64

/* Longest "where" text: a path plus ":line". */
#define CS_CONFIG_WHERE_MAX 4200

/* Unknown keys within this edit distance of a known one get a "did you
 * mean" suggestion (catches one or two slipped letters). */
#define CS_CONFIG_SUGGEST_DISTANCE 2

/* Longest idle timeout accepted, in seconds (68 years: INT_MAX). */
#define CS_TIMEOUT_MAX 2147483647L

/* Bounds of the buffer settings. max_bulk_len: 1 KiB leaves room for any
 * real prompt; 512 MiB is Redis's own ceiling. The query and output
 * buffers must hold at least one max_bulk_len argument plus framing. */
#define CS_BULK_LEN_MIN ((size_t)1024)
#define CS_BULK_LEN_MAX ((size_t)512 * 1024 * 1024)
#define CS_QUERY_BUFFER_MIN ((size_t)64 * 1024)
#define CS_QUERY_BUFFER_MAX ((size_t)2 * 1024 * 1024 * 1024)
#define CS_OUTPUT_BUFFER_MIN ((size_t)64 * 1024)
#define CS_OUTPUT_BUFFER_MAX ((size_t)4 * 1024 * 1024 * 1024)
/* Framing around the largest argument (array and bulk headers, the
 * other, short arguments of the command or reply). */
#define CS_FRAMING_SLACK ((size_t)4096)

typedef struct cs_config_entry {
    char *key;
    char *value;
    char *where; /* "file:line" or "command line (--key)" */
    int from_file;
} cs_config_entry_t;

/* What the getters record (mutable behind a const cs_config_t). */
typedef struct cs_config_usage {
    unsigned char *read; /* per entry: 1 once a getter read it */
    char **known;        /* every key name asked for */
    int nknown;
    int capknown;
} cs_config_usage_t;

struct cs_config {
    cs_config_entry_t *entries;
    int n;
    int cap;
    char *file;
    cs_config_usage_t *usage;
};

int cs_config_create(cs_config_t **pcfg)
{
    cs_config_t *cfg = cs_calloc(1, sizeof(*cfg));

    cfg->usage = cs_calloc(1, sizeof(*cfg->usage));
    *pcfg = cfg;
    return CS_OK;
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        cs_free(s);
    }
}

void cs_config_free(cs_config_t *cfg)
{
    int i;

    if (cfg == NULL) {
        return;
    }
    for (i = 0; i < cfg->n; i++) {
        cs_free(cfg->entries[i].key);
        wipe_free(cfg->entries[i].value); /* may be a password */
        cs_free(cfg->entries[i].where);
    }
    for (i = 0; i < cfg->usage->nknown; i++) {
        cs_free(cfg->usage->known[i]);
    }
    cs_free(cfg->usage->known);
    cs_free(cfg->usage->read);
    cs_free(cfg->usage);
    cs_free(cfg->entries);
    cs_free(cfg->file);
    cs_free(cfg);
}

static char *dup_str(const char *s)
{
    return cs_strndup(s, strlen(s));
}

/* Normalises a key into out (lower case, '-' -> '_'). Returns CS_ERR if
 * it is empty, too long or holds other than [A-Za-z0-9_.-]. */
static int normalize_key(const char *key, size_t n, char *out)
{
    size_t i;
    char c;

    if (n == 0 || n >= CS_CONFIG_KEY_MAX) {
        return CS_ERR;
    }
    for (i = 0; i < n; i++) {
        c = key[i];
        if (c == '-') {
            c = '_';
        }
        if (!isalnum((unsigned char)c) && c != '_' && c != '.') {
            return CS_ERR;
        }
        out[i] = (char)tolower((unsigned char)c);
    }
    out[n] = '\0';
    return CS_OK;
}

static int find_entry(const cs_config_t *cfg, const char *key)
{
    int i;

    for (i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->entries[i].key, key) == 0) {
            return i;
        }
    }
    return -1;
}

static int add_entry(cs_config_t *cfg, const char *key, const char *value,
                     const char *where, int from_file, char *err, size_t errlen)
{
    cs_config_entry_t *e;

    if (cfg->n == CS_CONFIG_ENTRIES_MAX) {
        snprintf(err, errlen, "%s: more than %d settings", where,
                 CS_CONFIG_ENTRIES_MAX);
        return CS_ERR;
    }
    if (cfg->n == cfg->cap) {
        cfg->cap = cfg->cap == 0 ? 32 : cfg->cap * 2;
        cfg->entries =
            cs_realloc(cfg->entries, sizeof(*cfg->entries) * cfg->cap);
        cfg->usage->read = cs_realloc(cfg->usage->read, cfg->cap);
    }
    e = &cfg->entries[cfg->n];
    e->key = dup_str(key);
    e->value = dup_str(value);
    e->where = dup_str(where);
    e->from_file = from_file;
    cfg->usage->read[cfg->n] = 0;
    cfg->n++;
    return CS_OK;
}

/* Parses the value part of a line (leading blanks already skipped) into
 * out (at least CS_CONFIG_LINE_MAX bytes). Returns NULL or a reason. */
static const char *parse_value(const char *s, char *out)
{
    size_t n = 0;
    char q = *s;

    if (q != '"' && q != '\'') {
        size_t len = strlen(s);

        while (len > 0 && isspace((unsigned char)s[len - 1])) {
            len--;
        }
        if (len == 0) {
            return "has no value";
        }
        memcpy(out, s, len);
        out[len] = '\0';
        return NULL;
    }
    for (s++; *s != q; s++) {
        if (*s == '\0') {
            return "has an unterminated quoted value";
        }
        if (q == '"' && *s == '\\') {
            s++;
            switch (*s) {
            case 'n':
                out[n++] = '\n';
                continue;
            case 'r':
                out[n++] = '\r';
                continue;
            case 't':
                out[n++] = '\t';
                continue;
            case '"':
            case '\\':
                out[n++] = *s;
                continue;
            default:
                return "has an unknown escape in its quoted value";
            }
        }
        out[n++] = *s;
    }
    for (s++; *s != '\0'; s++) {
        if (!isspace((unsigned char)*s)) {
            return "has text after its closing quote";
        }
    }
    out[n] = '\0';
    return NULL;
}

int cs_config_load_file(cs_config_t *cfg, const char *path, char *err,
                        size_t errlen)
{
    char line[CS_CONFIG_LINE_MAX + 2], value[CS_CONFIG_LINE_MAX + 2];
    char key[CS_CONFIG_KEY_MAX], where[CS_CONFIG_WHERE_MAX];
    const char *why;
    char *p, *k;
    size_t klen;
    int lineno = 0, rc = CS_ERR, prev;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open configuration file %s: %s", path,
                 strerror(errno));
        return CS_ERR;
    }
    cs_free(cfg->file);
    cfg->file = dup_str(path);
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        p = line + strlen(line);
        if (p > line && p[-1] != '\n' && !feof(f)) {
            snprintf(err, errlen, "%s: line longer than %d bytes", where,
                     CS_CONFIG_LINE_MAX);
            goto done;
        }
        while (p > line && (p[-1] == '\n' || p[-1] == '\r')) {
            *--p = '\0';
        }
        p = line;
        if (lineno == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0) {
            p += 3; /* UTF-8 byte order mark */
        }
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0' || *p == '#') {
            continue;
        }
        k = p;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            p++;
        }
        klen = (size_t)(p - k);
        if (normalize_key(k, klen, key) != CS_OK) {
            snprintf(err, errlen, "%s: '%.*s' is not a valid key", where,
                     (int)(klen > 64 ? 64 : klen), k);
            goto done;
        }
        while (isspace((unsigned char)*p)) {
            p++;
        }
        why = parse_value(p, value);
        if (why != NULL) {
            snprintf(err, errlen, "%s: %s %s", where, key, why);
            goto done;
        }
        prev = find_entry(cfg, key);
        if (prev >= 0 && cfg->entries[prev].from_file) {
            snprintf(err, errlen, "%s: %s is already set at %s", where, key,
                     cfg->entries[prev].where);
            goto done;
        }
        if (prev >= 0) {
            continue; /* a command line value wins */
        }
        if (add_entry(cfg, key, value, where, 1, err, errlen) != CS_OK) {
            goto done;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read configuration file %s: %s", path,
                 strerror(errno));
        goto done;
    }
    rc = CS_OK;
done:
    explicit_bzero(line, sizeof(line));
    explicit_bzero(value, sizeof(value));
    fclose(f);
    return rc;
}

int cs_config_set_override(cs_config_t *cfg, const char *key, const char *value,
                           char *err, size_t errlen)
{
    char nkey[CS_CONFIG_KEY_MAX], where[CS_CONFIG_KEY_MAX + 32];
    cs_config_entry_t *e;
    int i;

    if (normalize_key(key, strlen(key), nkey) != CS_OK) {
        snprintf(err, errlen, "command line: '--%.64s' is not a valid key",
                 key);
        return CS_ERR;
    }
    snprintf(where, sizeof(where), "command line (--%s)", nkey);
    i = find_entry(cfg, nkey);
    if (i < 0) {
        return add_entry(cfg, nkey, value, where, 0, err, errlen);
    }
    e = &cfg->entries[i];
    wipe_free(e->value);
    cs_free(e->where);
    e->value = dup_str(value);
    e->where = dup_str(where);
    e->from_file = 0;
    return CS_OK;
}

const char *cs_config_file(const cs_config_t *cfg)
{
    return cfg->file;
}

int cs_config_has(const cs_config_t *cfg, const char *key)
{
    char nkey[CS_CONFIG_KEY_MAX];

    if (normalize_key(key, strlen(key), nkey) != CS_OK) {
        return 0;
    }
    return find_entry(cfg, nkey) >= 0;
}

const char *cs_config_where(const cs_config_t *cfg, const char *key)
{
    char nkey[CS_CONFIG_KEY_MAX];
    int i;

    if (normalize_key(key, strlen(key), nkey) != CS_OK) {
        return "default";
    }
    i = find_entry(cfg, nkey);
    return i < 0 ? "default" : cfg->entries[i].where;
}

static void remember_key(const cs_config_t *cfg, const char *key)
{
    cs_config_usage_t *u = cfg->usage;
    int i;

    for (i = 0; i < u->nknown; i++) {
        if (strcmp(u->known[i], key) == 0) {
            return;
        }
    }
    if (u->nknown == u->capknown) {
        u->capknown = u->capknown == 0 ? 32 : u->capknown * 2;
        u->known = cs_realloc(u->known, sizeof(*u->known) * u->capknown);
    }
    u->known[u->nknown++] = dup_str(key);
}

/* Marks key read; returns its entry's value, or NULL when absent. */
static const char *read_key(const cs_config_t *cfg, const char *key,
                            const char **where)
{
    char nkey[CS_CONFIG_KEY_MAX];
    int i;

    *where = "default";
    if (normalize_key(key, strlen(key), nkey) != CS_OK) {
        return NULL;
    }
    remember_key(cfg, nkey);
    i = find_entry(cfg, nkey);
    if (i < 0) {
        return NULL;
    }
    cfg->usage->read[i] = 1;
    *where = cfg->entries[i].where;
    return cfg->entries[i].value;
}

static int fail_at(char *err, size_t errlen, const char *where, const char *key,
                   const char *fmt, va_list ap)
{
    char msg[CS_CONFIG_ERR_MAX];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(err, errlen, "%s: %s: %s", where, key, msg);
    return CS_ERR;
}

static int fail(char *err, size_t errlen, const char *where, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, const char *where, const char *key,
                const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = fail_at(err, errlen, where, key, fmt, ap);
    va_end(ap);
    return rc;
}

int cs_config_error(const cs_config_t *cfg, const char *key, char *err,
                    size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = fail_at(err, errlen, cs_config_where(cfg, key), key, fmt, ap);
    va_end(ap);
    return rc;
}

int cs_config_get_str(const cs_config_t *cfg, const char *key, const char *def,
                      const char **out, char *err, size_t errlen)
{
    const char *where, *v = read_key(cfg, key, &where);

    (void)err;
    (void)errlen;
    *out = v != NULL ? v : def;
    return CS_OK;
}

int cs_config_get_long(const cs_config_t *cfg, const char *key, long def,
                       long min, long max, long *out, char *err, size_t errlen)
{
    const char *where, *v = read_key(cfg, key, &where);
    char *end;
    long x;

    if (v == NULL) {
        *out = def;
        return CS_OK;
    }
    errno = 0;
    x = strtol(v, &end, 10);
    if (v[0] == '\0' || isspace((unsigned char)v[0]) || *end != '\0' ||
        errno != 0 || x < min || x > max) {
        return fail(err, errlen, where, key,
                    "expected an integer from %ld to %ld, got '%.64s'", min,
                    max, v);
    }
    *out = x;
    return CS_OK;
}

int cs_config_get_double(const cs_config_t *cfg, const char *key, double def,
                         double min, double max, double *out, char *err,
                         size_t errlen)
{
    const char *where, *v = read_key(cfg, key, &where);
    char *end;
    double x;

    if (v == NULL) {
        *out = def;
        return CS_OK;
    }
    errno = 0;
    x = strtod(v, &end);
    if (v[0] == '\0' || isspace((unsigned char)v[0]) || *end != '\0' ||
        errno != 0 || !isfinite(x) || x < min || x > max) {
        return fail(err, errlen, where, key,
                    "expected a number from %g to %g, got '%.64s'", min, max,
                    v);
    }
    *out = x;
    return CS_OK;
}

/* Shows a byte count the way a user would write it. */
static const char *size_text(size_t n, char *buf, size_t buflen)
{
    static const char *const units[] = {"gb", "mb", "kb"};
    static const size_t mult[] = {(size_t)1 << 30, (size_t)1 << 20,
                                  (size_t)1 << 10};
    int i;

    for (i = 0; i < 3; i++) {
        if (n != 0 && n % mult[i] == 0) {
            snprintf(buf, buflen, "%zu%s", n / mult[i], units[i]);
            return buf;
        }
    }
    snprintf(buf, buflen, "%zu", n);
    return buf;
}

/* Parses "<digits>[unit]"; returns CS_ERR on syntax or overflow. */
static int parse_size(const char *v, size_t *out)
{
    static const struct {
        const char *name;
        unsigned long long mult;
    } units[] = {
        {"", 1ULL},
        {"k", 1000ULL},
        {"kb", 1024ULL},
        {"m", 1000000ULL},
        {"mb", 1048576ULL},
        {"g", 1000000000ULL},
        {"gb", 1073741824ULL},
    };
    unsigned long long x;
    char *end;
    size_t i;

    if (!isdigit((unsigned char)v[0])) {
        return CS_ERR;
    }
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno != 0) {
        return CS_ERR;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].name) == 0) {
            if (x > SIZE_MAX / units[i].mult) {
                return CS_ERR;
            }
            *out = (size_t)(x * units[i].mult);
            return CS_OK;
        }
    }
    return CS_ERR;
}

int cs_config_get_size(const cs_config_t *cfg, const char *key, size_t def,
                       size_t min, size_t max, size_t *out, char *err,
                       size_t errlen)
{
    const char *where, *v = read_key(cfg, key, &where);
    char lo[32], hi[32];
    size_t x;

    if (v == NULL) {
        *out = def;
        return CS_OK;
    }
    if (parse_size(v, &x) != CS_OK || x < min || x > max) {
        return fail(err, errlen, where, key,
                    "expected a size from %s to %s (units k, kb, m, mb, g, "
                    "gb), got '%.64s'",
                    size_text(min, lo, sizeof(lo)),
                    size_text(max, hi, sizeof(hi)), v);
    }
    *out = x;
    return CS_OK;
}

int cs_config_get_bool(const cs_config_t *cfg, const char *key, int def,
                       int *out, char *err, size_t errlen)
{
    const char *where, *v = read_key(cfg, key, &where);

    if (v == NULL) {
        *out = def;
        return CS_OK;
    }
    if (strcasecmp(v, "yes") == 0) {
        *out = 1;
        return CS_OK;
    }
    if (strcasecmp(v, "no") == 0) {
        *out = 0;
        return CS_OK;
    }
    return fail(err, errlen, where, key, "expected yes or no, got '%.64s'", v);
}

int cs_config_get_enum(const cs_config_t *cfg, const char *key,
                       const char *const *names, int def, int *out, char *err,
                       size_t errlen)
{
    const char *where, *v = read_key(cfg, key, &where);
    char list[CS_CONFIG_ERR_MAX];
    size_t used = 0;
    int i;

    if (v == NULL) {
        *out = def;
        return CS_OK;
    }
    list[0] = '\0';
    for (i = 0; names[i] != NULL; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            *out = i;
            return CS_OK;
        }
        if (used < sizeof(list)) {
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                     i > 0 ? ", " : "", names[i]);
        }
    }
    return fail(err, errlen, where, key, "expected one of %s, got '%.64s'",
                list, v);
}

/* Levenshtein distance, for "did you mean" (short strings only). */
static int edit_distance(const char *a, const char *b)
{
    int row[CS_CONFIG_KEY_MAX + 1];
    int la = (int)strlen(a), lb = (int)strlen(b), i, j, diag, up, best;

    if (la > CS_CONFIG_KEY_MAX || lb > CS_CONFIG_KEY_MAX) {
        return CS_CONFIG_KEY_MAX;
    }
    for (j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (i = 1; i <= la; i++) {
        diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            up = row[j];
            best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int is_known(const cs_config_t *cfg, const char *key)
{
    int i;

    for (i = 0; i < cfg->usage->nknown; i++) {
        if (strcmp(cfg->usage->known[i], key) == 0) {
            return 1;
        }
    }
    return 0;
}

int cs_config_check_unused(const cs_config_t *cfg, char *err, size_t errlen)
{
    const cs_config_entry_t *first = NULL;
    const char *suggest = NULL;
    char hint[CS_CONFIG_KEY_MAX + 32], more[48];
    int i, d, best = CS_CONFIG_SUGGEST_DISTANCE + 1, unused = 0;

    for (i = 0; i < cfg->n; i++) {
        if (cfg->usage->read[i] || is_known(cfg, cfg->entries[i].key)) {
            continue;
        }
        if (first == NULL) {
            first = &cfg->entries[i];
        }
        unused++;
    }
    if (first == NULL) {
        return CS_OK;
    }
    for (i = 0; i < cfg->usage->nknown; i++) {
        d = edit_distance(first->key, cfg->usage->known[i]);
        if (d < best) {
            best = d;
            suggest = cfg->usage->known[i];
        }
    }
    hint[0] = '\0';
    if (suggest != NULL) {
        snprintf(hint, sizeof(hint), " (did you mean '%s'?)", suggest);
    }
    more[0] = '\0';
    if (unused > 1) {
        snprintf(more, sizeof(more), "; and %d more unknown key%s", unused - 1,
                 unused > 2 ? "s" : "");
    }
    snprintf(err, errlen, "%s: unknown key '%s'%s%s", first->where, first->key,
             hint, more);
    return CS_ERR;
}

void cs_config_inherit_known(cs_config_t *dst, const cs_config_t *src)
{
    int i;

    for (i = 0; i < src->usage->nknown; i++) {
        remember_key(dst, src->usage->known[i]);
    }
}

int cs_config_entry(const cs_config_t *cfg, int i, const char **key,
                    const char **value)
{
    if (i < 0 || i >= cfg->n) {
        return CS_ERR;
    }
    *key = cfg->entries[i].key;
    *value = cfg->entries[i].value;
    return CS_OK;
}

/* ---- The network core's own keys ---------------------------------- */

int cs_config_default_threads(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        n = CPU_COUNT(&set);
    }
    else {
        n = sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (n < 1) {
        n = 1;
    }
    return n > CS_THREADS_MAX ? CS_THREADS_MAX : (int)n;
}

/* Reads the first line of path into out (CS_PASS_MAX + 1 bytes). */
static int read_password_file(const cs_config_t *cfg, const char *path,
                              char *out, char *err, size_t errlen)
{
    char buf[CS_PASS_MAX + 3];
    size_t n;
    FILE *f;
    int rc = CS_ERR;

    f = fopen(path, "r");
    if (f == NULL) {
        return cs_config_error(cfg, "requirepass_file", err, errlen,
                               "cannot open %s: %s", path, strerror(errno));
    }
    if (fgets(buf, sizeof(buf), f) == NULL) {
        buf[0] = '\0';
    }
    n = strcspn(buf, "\r\n");
    if (n > CS_PASS_MAX) {
        cs_config_error(cfg, "requirepass_file", err, errlen,
                        "the password in %s is longer than %d bytes", path,
                        CS_PASS_MAX);
    }
    else if (n == 0) {
        cs_config_error(cfg, "requirepass_file", err, errlen,
                        "%s is empty (the password is its first line)", path);
    }
    else {
        memcpy(out, buf, n);
        out[n] = '\0';
        rc = CS_OK;
    }
    explicit_bzero(buf, sizeof(buf));
    fclose(f);
    return rc;
}

static int check_bind(const cs_config_t *cfg, const char *addr, char *err,
                      size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(addr, NULL, &hints, &res);
    if (res != NULL) {
        freeaddrinfo(res);
    }
    if (rc != 0) {
        return cs_config_error(cfg, "bind", err, errlen,
                               "expected an IPv4 or IPv6 address such as "
                               "127.0.0.1, 0.0.0.0 or ::1, got '%.64s'",
                               addr);
    }
    return CS_OK;
}

static int get_mode(const cs_config_t *cfg, const char *key, unsigned def,
                    unsigned *out, char *err, size_t errlen)
{
    const char *v;
    char *end;
    unsigned long x;

    cs_config_get_str(cfg, key, NULL, &v, err, errlen);
    if (v == NULL) {
        *out = def;
        return CS_OK;
    }
    errno = 0;
    x = strtoul(v, &end, 8);
    if (v[0] < '0' || v[0] > '7' || *end != '\0' || errno != 0 || x > 0777) {
        return cs_config_error(cfg, key, err, errlen,
                               "expected octal permissions such as 770, "
                               "got '%.64s'",
                               v);
    }
    *out = (unsigned)x;
    return CS_OK;
}

/* A buffer must hold one max_bulk_len argument plus framing; blames
 * the buffer key when it was set, else max_bulk_len. */
static int check_room(const cs_config_t *cfg, const char *key, size_t buf,
                      size_t bulk, char *err, size_t errlen)
{
    if (buf >= bulk + CS_FRAMING_SLACK) {
        return CS_OK;
    }
    if (cs_config_has(cfg, key)) {
        return cs_config_error(cfg, key, err, errlen,
                               "must exceed max_bulk_len (%zu) by at least "
                               "%zu bytes",
                               bulk, CS_FRAMING_SLACK);
    }
    return cs_config_error(cfg, "max_bulk_len", err, errlen,
                           "must be at least %zu bytes below %s (%zu)",
                           CS_FRAMING_SLACK, key, buf);
}

/* A path setting: absent or "" means none. */
static void get_path(const cs_config_t *cfg, const char *key, const char **out)
{
    cs_config_get_str(cfg, key, NULL, out, NULL, 0);
    if (*out != NULL && (*out)[0] == '\0') {
        *out = NULL;
    }
}

int cs_config_core(const cs_config_t *cfg, cs_core_conf_t *core, char *err,
                   size_t errlen)
{
    static const char *const levels[] = {"debug", "info", "notice", "warning",
                                         NULL};
    struct sockaddr_un sun;
    const char *pass, *passfile;
    long v;
    int level;

    memset(core, 0, sizeof(*core));
    cs_config_get_str(cfg, "bind", CS_DEFAULT_BIND, &core->bind, err, errlen);
    if (check_bind(cfg, core->bind, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    if (cs_config_get_long(cfg, "port", CS_DEFAULT_PORT, 0, 65535, &v, err,
                           errlen) != CS_OK) {
        return CS_ERR;
    }
    core->port = (int)v;
    get_path(cfg, "unixsocket", &core->unixsocket);
    if (core->unixsocket != NULL &&
        strlen(core->unixsocket) >= sizeof(sun.sun_path)) {
        return cs_config_error(cfg, "unixsocket", err, errlen,
                               "path longer than %zu bytes",
                               sizeof(sun.sun_path) - 1);
    }
    if (get_mode(cfg, "unixsocketperm", CS_DEFAULT_UNIXSOCKETPERM,
                 &core->unixsocketperm, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    if (core->port == 0 && core->unixsocket == NULL) {
        return cs_config_error(cfg, "port", err, errlen,
                               "port is 0 and unixsocket is not set: "
                               "nothing to listen on");
    }
    if (cs_config_get_long(cfg, "threads", cs_config_default_threads(), 1,
                           CS_THREADS_MAX, &v, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    core->threads = (int)v;
    if (cs_config_get_long(cfg, "maxclients", CS_DEFAULT_MAXCLIENTS, 1,
                           CS_MAXCLIENTS_MAX, &v, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    core->maxclients = (int)v;
    if (cs_config_get_long(cfg, "timeout", 0, 0, CS_TIMEOUT_MAX, &core->timeout,
                           err, errlen) != CS_OK) {
        return CS_ERR;
    }
    cs_config_get_str(cfg, "requirepass", NULL, &pass, err, errlen);
    get_path(cfg, "requirepass_file", &passfile);
    if (pass != NULL && passfile != NULL) {
        return cs_config_error(cfg, "requirepass_file", err, errlen,
                               "set either requirepass or "
                               "requirepass_file, not both");
    }
    if (pass != NULL && strlen(pass) > CS_PASS_MAX) {
        return cs_config_error(cfg, "requirepass", err, errlen,
                               "longer than %d bytes", CS_PASS_MAX);
    }
    if (pass != NULL) {
        strcpy(core->requirepass, pass);
    }
    if (passfile != NULL && read_password_file(cfg, passfile, core->requirepass,
                                               err, errlen) != CS_OK) {
        return CS_ERR;
    }
    if (cs_config_get_size(cfg, "max_bulk_len", CS_RESP_BULK_LEN_DEFAULT,
                           CS_BULK_LEN_MIN, CS_BULK_LEN_MAX,
                           &core->max_bulk_len, err, errlen) != CS_OK ||
        cs_config_get_size(cfg, "max_query_buffer", CS_DEFAULT_MAX_QUERY_BUFFER,
                           CS_QUERY_BUFFER_MIN, CS_QUERY_BUFFER_MAX,
                           &core->max_query_buffer, err, errlen) != CS_OK ||
        cs_config_get_size(cfg, "max_output_buffer",
                           CS_DEFAULT_MAX_OUTPUT_BUFFER, CS_OUTPUT_BUFFER_MIN,
                           CS_OUTPUT_BUFFER_MAX, &core->max_output_buffer, err,
                           errlen) != CS_OK) {
        return CS_ERR;
    }
    if (check_room(cfg, "max_query_buffer", core->max_query_buffer,
                   core->max_bulk_len, err, errlen) != CS_OK ||
        check_room(cfg, "max_output_buffer", core->max_output_buffer,
                   core->max_bulk_len, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    if (cs_config_get_long(cfg, "metrics_port", 0, 0, 65535, &v, err, errlen) !=
        CS_OK) {
        return CS_ERR;
    }
    core->metrics_port = (int)v;
    if (core->metrics_port != 0 && core->metrics_port == core->port) {
        return cs_config_error(cfg, "metrics_port", err, errlen,
                               "must differ from port (%d)", core->port);
    }
    if (cs_config_get_bool(cfg, "daemonize", 0, &core->daemonize, err,
                           errlen) != CS_OK) {
        return CS_ERR;
    }
    get_path(cfg, "pidfile", &core->pidfile);
    get_path(cfg, "logfile", &core->logfile);
    if (cs_config_get_enum(cfg, "loglevel", levels, CS_LOG_NOTICE, &level, err,
                           errlen) != CS_OK) {
        return CS_ERR;
    }
    core->loglevel = (cs_log_level_t)level;
    return CS_OK;
}

void cs_config_core_wipe(cs_core_conf_t *core)
{
    explicit_bzero(core->requirepass, sizeof(core->requirepass));
}
