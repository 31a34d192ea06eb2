/* Shared by the command-line tools. See ark_cli.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <apr_general.h>

#include "ark_cli.h"

static const char *cli_prog = "ark";

int ark_cli_start(const char *prog, int *argc, const char *const **argv,
                  apr_pool_t **pp)
{
    cli_prog = prog;
    if (apr_app_initialize(argc, argv, NULL) != APR_SUCCESS) {
        fprintf(stderr, "%s: cannot initialise APR\n", prog);
        return ARK_CLI_EXIT_FAIL;
    }
    atexit(apr_terminate);
    if (apr_pool_create(pp, NULL) != APR_SUCCESS) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return ARK_CLI_EXIT_FAIL;
    }
    return ARK_CLI_EXIT_OK;
}

static void say(const char *what, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: %s", cli_prog, what);
    vfprintf(stderr, fmt, ap);
}

void ark_cli_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    say("", fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void ark_cli_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    say("warning: ", fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int ark_cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    say("", fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", cli_prog);
    return ARK_CLI_EXIT_USAGE;
}
