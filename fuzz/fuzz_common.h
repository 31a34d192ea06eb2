/* What every libFuzzer harness in fuzz/ shares.
 *
 * Each harness is one fuzz_<target>.c defining LLVMFuzzerTestOneInput;
 * it is built by fuzz/run.sh with clang, -fsanitize=fuzzer,address,
 * undefined, together with the mod_ark or cachesvc sources it drives
 * (compiled the same way), and run on its seed corpus in
 * fuzz/corpus/<target>/. See docs/fuzzing.md.
 *
 * A harness does two things with every input: it calls the code under
 * test the way the gateway does (so that ASan and UBSan see every byte
 * the code reads and every value it computes), and it checks the
 * promises the code's header makes (a parser that does not depend on how
 * its input was split, a round trip that changes nothing, an answer that
 * is JSON). A broken promise calls FUZZ_CHECK, which prints what failed
 * and aborts, which libFuzzer reports as a crash and saves the input.
 *
 * fuzz_common.c holds libFuzzer's entry point, LLVMFuzzerTestOneInput:
 * it initializes APR once and calls the harness's fuzz_one with a pool
 * that it clears when fuzz_one returns, so that every cleanup registered
 * on it (jansson documents, SSE parser buffers, OpenSSL digests) runs
 * within the input, before libFuzzer's leak check. Everything else a
 * harness allocates it frees itself.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <apr_pools.h>

/* Aborts with file, line and the condition's text when cond is false. */
#define FUZZ_CHECK(cond) \
    ((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))

/* Prints "fuzz check failed: FILE:LINE: WHAT" and aborts. */
void fuzz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));

/* Defined by each harness: runs one input, data[0, size) (exactly the
 * bytes libFuzzer made, not NUL-terminated), allocating from p. */
void fuzz_one(const uint8_t *data, size_t size, apr_pool_t *p);

/* Initializes APR (once) and returns the root of the pools the harness
 * uses. Called by the entry point; helpers that keep state across
 * inputs may call it to make their own long-lived pool. */
apr_pool_t *fuzz_apr_init(void);

/* A NUL-terminated copy of data[0, len) in a heap block of exactly
 * len + 1 bytes (so that ASan sees a read past its end, which it cannot
 * in pool memory), freed by a cleanup of p. */
char *fuzz_strndup(const uint8_t *data, size_t len, apr_pool_t *p);

#endif /* FUZZ_COMMON_H */
