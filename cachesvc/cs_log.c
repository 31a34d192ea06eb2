/* ark-cached: logging (see cs_log.h for the line format and the rules).
 *
 * A message is formatted into a stack buffer (timestamp, level, pid,
 * text, newline) and written with one write(2) to descriptor 2. The log
 * file, when there is one, has been dup2'ed onto descriptor 2 with
 * O_APPEND, so concurrent lines stay whole and a reopen after logrotate
 * swaps the destination atomically for every thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cs_common.h"
#include "cs_log.h"

/* Longest log file path kept for reopening. */
#define CS_LOG_PATH_MAX 4096

static const char *const level_names[] = {"debug",   "info",  "notice",
                                          "warning", "error", "crit"};

static int log_level = CS_LOG_NOTICE;
static char log_path[CS_LOG_PATH_MAX];

static int open_onto_stderr(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

    if (fd < 0) {
        snprintf(err, errlen, "cannot open log file %s: %s", path,
                 strerror(errno));
        return CS_ERR;
    }
    if (fd != STDERR_FILENO) {
        if (dup2(fd, STDERR_FILENO) < 0) {
            snprintf(err, errlen, "cannot use log file %s: %s", path,
                     strerror(errno));
            close(fd);
            return CS_ERR;
        }
        close(fd);
    }
    return CS_OK;
}

int cs_log_open(const char *path, char *err, size_t errlen)
{
    if (path == NULL || path[0] == '\0') {
        log_path[0] = '\0';
        return CS_OK;
    }
    if (strlen(path) >= sizeof(log_path)) {
        snprintf(err, errlen, "log file path too long (max %d bytes)",
                 CS_LOG_PATH_MAX - 1);
        return CS_ERR;
    }
    if (open_onto_stderr(path, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    strcpy(log_path, path);
    return CS_OK;
}

int cs_log_reopen(char *err, size_t errlen)
{
    if (log_path[0] == '\0') {
        return CS_OK;
    }
    return open_onto_stderr(log_path, err, errlen);
}

void cs_log_set_level(cs_log_level_t level)
{
    __atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

cs_log_level_t cs_log_get_level(void)
{
    return (cs_log_level_t)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

int cs_log_level_parse(const char *s, cs_log_level_t *level)
{
    int i;

    for (i = CS_LOG_DEBUG; i <= CS_LOG_WARNING; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *level = (cs_log_level_t)i;
            return CS_OK;
        }
    }
    return CS_ERR;
}

const char *cs_log_level_name(cs_log_level_t level)
{
    if ((int)level < CS_LOG_DEBUG || level > CS_LOG_CRIT) {
        return "?";
    }
    return level_names[level];
}

int cs_log_enabled(cs_log_level_t level)
{
    return level >= CS_LOG_ERROR ||
           (int)level >= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void cs_log(cs_log_level_t level, const char *fmt, ...)
{
    char line[CS_LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    size_t n, start, i;
    int k;
    ssize_t w;

    if (!cs_log_enabled(level)) {
        return;
    }
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03d [%s] [%ld] ",
                 (int)(tv.tv_usec / 1000), cs_log_level_name(level),
                 (long)getpid());
    if (k > 0) {
        n += (size_t)k;
    }
    start = n;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (k > 0) {
        n += (size_t)k;
    }
    if (n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    /* One message, one line: control characters (a newline in an error
     * text from a backend, say) become spaces. */
    for (i = start; i < n; i++) {
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
            line[i] = ' ';
        }
    }
    line[n++] = '\n';
    do {
        w = write(STDERR_FILENO, line, n);
    } while (w < 0 && errno == EINTR);
}
