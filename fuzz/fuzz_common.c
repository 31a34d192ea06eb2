/* libFuzzer's entry point and the helpers shared by the fuzz harnesses
 * (see fuzz_common.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>

#include "fuzz_common.h"

static apr_pool_t *root_pool, *input_pool;

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz check failed: %s:%d: %s\n", file, line, what);
    abort();
}

apr_pool_t *fuzz_apr_init(void)
{
    if (!root_pool) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&root_pool, NULL) != APR_SUCCESS
            || apr_pool_create(&input_pool, root_pool) != APR_SUCCESS) {
            fuzz_fail(__FILE__, __LINE__, "APR initialization");
        }
    }
    return root_pool;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_apr_init();
    fuzz_one(data, size, input_pool);
    apr_pool_clear(input_pool);
    return 0;
}

static apr_status_t free_cleanup(void *block)
{
    free(block);
    return APR_SUCCESS;
}

char *fuzz_strndup(const uint8_t *data, size_t len, apr_pool_t *p)
{
    char *s = malloc(len + 1);

    if (!s) {
        fuzz_fail(__FILE__, __LINE__, "malloc");
    }
    apr_pool_cleanup_register(p, s, free_cleanup, apr_pool_cleanup_null);
    if (len) {
        memcpy(s, data, len);
    }
    s[len] = '\0';
    return s;
}
