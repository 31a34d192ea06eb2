/* ark-cached: conventions shared by every file of the daemon.
 *
 * Functions return CS_OK or CS_ERR (with a message in a caller-supplied
 * buffer where useful) and hand results back through out-parameters.
 * Memory: heap allocation goes through cs_malloc/cs_realloc/cs_free, which
 * count live bytes (cs_mem_used) so INFO can report them and the daemon
 * can refuse work beyond its configured limit. Every limit is a named
 * constant with a comment saying why it has that value.
 */
#ifndef CS_COMMON_H
#define CS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define CS_OK 0
#define CS_ERR (-1)

/* Counting allocator (thread-safe). cs_malloc and cs_realloc never return
 * NULL: on exhaustion they log and abort, as Redis does. */
void *cs_malloc(size_t n);
void *cs_calloc(size_t n, size_t size);
void *cs_realloc(void *p, size_t n);
char *cs_strndup(const char *s, size_t n);
void cs_free(void *p);
size_t cs_mem_used(void);

/* A growable byte buffer (NUL-terminated for convenience). */
typedef struct cs_buf {
    char *data;
    size_t len;
    size_t cap;
} cs_buf_t;

void cs_buf_init(cs_buf_t *b);
void cs_buf_free(cs_buf_t *b);
void cs_buf_reset(cs_buf_t *b);
void cs_buf_append(cs_buf_t *b, const void *data, size_t n);
void cs_buf_printf(cs_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void cs_buf_consume(cs_buf_t *b, size_t n);

/* Monotonic and wall clocks in microseconds. */
int64_t cs_now_us(void);
int64_t cs_wall_us(void);

#endif /* CS_COMMON_H */
