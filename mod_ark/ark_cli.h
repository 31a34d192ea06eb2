/* What the command-line tools (ark-keys, ark-report) share: exit codes,
 * messages prefixed with the program's name, and APR start-up.
 */
#ifndef ARK_CLI_H
#define ARK_CLI_H

#include <apr_pools.h>

#define ARK_CLI_EXIT_OK    0
#define ARK_CLI_EXIT_FAIL  1
#define ARK_CLI_EXIT_USAGE 2

#if defined(__GNUC__)
#define ARK_CLI_PRINTF __attribute__((format(printf, 1, 2)))
#else
#define ARK_CLI_PRINTF
#endif

/* Initialises APR (terminated at exit), names the program for the
 * messages below and makes the pool *pp. Returns ARK_CLI_EXIT_OK, or
 * ARK_CLI_EXIT_FAIL after saying why on stderr. */
int ark_cli_start(const char *prog, int *argc, const char *const **argv,
                  apr_pool_t **pp);

/* "<prog>: <message>\n" on stderr. */
void ark_cli_error(const char *fmt, ...) ARK_CLI_PRINTF;

/* "<prog>: warning: <message>\n" on stderr. */
void ark_cli_warn(const char *fmt, ...) ARK_CLI_PRINTF;

/* The message and a pointer to --help on stderr; returns
 * ARK_CLI_EXIT_USAGE. */
int ark_cli_usage_error(const char *fmt, ...) ARK_CLI_PRINTF;

#endif /* ARK_CLI_H */
