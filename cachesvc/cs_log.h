/* ark-cached: logging.
 *
 * One line per message, written with a single write(2) on file descriptor
 * 2, so lines from different threads never interleave:
 *
 *   2024-11-27 11:55:00.123 [notice] [12345] ACD00012: listening on ...
 *
 * When a log file is configured, cs_log_open() opens it and moves it onto
 * descriptor 2 (dup2), so anything else written to stderr (the allocator's
 * out-of-memory message, sanitizer reports) lands in the same file;
 * cs_log_reopen() does it again after logrotate renamed the file (SIGHUP).
 * Without a log file, lines go to the inherited stderr (the journal under
 * systemd).
 *
 * Every message starts with its own number, written with CS_LOGNO so it
 * can be grepped in the sources and in docs/ark-cached.md:
 *
 *   cs_log(CS_LOG_NOTICE, CS_LOGNO(00012) "listening on %s", addr);
 *
 * Numbers ACD00001-ACD00199 belong to the network core (main, config,
 * server, commands), ACD00200-ACD00999 to the cache engine.
 *
 * Levels by meaning: CRIT cannot start or must stop; ERROR our bug or a
 * misconfiguration; WARNING a backend (Redis, embedder) failure; NOTICE
 * lifecycle (start, stop, reload); INFO unusual client behaviour (limits
 * hit, protocol errors); DEBUG per-connection and per-command decisions.
 * Never log a payload, a password or a key at any level.
 *
 * Thread safety: every function may be called from any thread; the level
 * is an atomic, the file switch is one dup2.
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stddef.h>

typedef enum {
    CS_LOG_DEBUG = 0,
    CS_LOG_INFO = 1,
    CS_LOG_NOTICE = 2,
    CS_LOG_WARNING = 3,
    CS_LOG_ERROR = 4,
    CS_LOG_CRIT = 5
} cs_log_level_t;

/* "ACD" + five digits + ": ", pasted in front of a format string. */
#define CS_LOGNO(n) "ACD" #n ": "

/* Longest line written, including the prefix; longer messages are cut
 * (a log line is for people; nothing we log legitimately needs more). */
#define CS_LOG_LINE_MAX 2048

/* Sends the log to path (appending, created 0640), or keeps stderr when
 * path is NULL or empty. Returns CS_OK, or CS_ERR with err set (the file
 * cannot be opened); the previous destination is kept on error. */
int cs_log_open(const char *path, char *err, size_t errlen);

/* Opens the same path again (after logrotate). No-op for stderr. */
int cs_log_reopen(char *err, size_t errlen);

/* Messages below level are dropped; ERROR and CRIT are always written. */
void cs_log_set_level(cs_log_level_t level);
cs_log_level_t cs_log_get_level(void);

/* Parses a loglevel value: debug, info, notice or warning (the levels an
 * operator may choose). Returns CS_OK or CS_ERR. */
int cs_log_level_parse(const char *s, cs_log_level_t *level);
const char *cs_log_level_name(cs_log_level_t level);

/* Writes one line if level is enabled. */
void cs_log(cs_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether a message at level would be written (to skip costly
 * formatting of DEBUG details). */
int cs_log_enabled(cs_log_level_t level);

#endif /* CS_LOG_H */
