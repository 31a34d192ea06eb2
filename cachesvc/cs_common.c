/* ark-cached: the counting allocator, the growable byte buffer and the
 * clocks that every other file of the daemon uses (see cs_common.h).
 *
 * Every block handed out by cs_malloc carries a small header in front of
 * it that records the size the caller asked for; cs_free and cs_realloc
 * read it back so the live byte count (one relaxed atomic, readable from
 * any thread by cs_mem_used) stays exact without asking libc.  Running
 * out of memory is not an error a caller could handle sensibly, so it is
 * reported on stderr (which is the log file when one is configured, see
 * cs_log.c) and the process aborts, as Redis does.
 *
 * A cs_buf_t starts without any heap block: data points at a shared empty
 * string and cap is 0, so an idle connection with empty buffers costs no
 * memory, and data is still a valid NUL-terminated string.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_common.h"

/* The header in front of each block: large enough to keep the caller's
 * block aligned for any type (max_align_t), holding the requested size. */
typedef union cs_mem_header {
    size_t size;
    max_align_t align;
} cs_mem_header_t;

#define CS_MEM_HEADER sizeof(cs_mem_header_t)

/* Smallest heap block a cs_buf_t gets on its first append: most RESP
 * replies and requests fit, and doubling from here is quick. */
#define CS_BUF_MIN_CAP 64

static size_t mem_used;

static char empty_string[1];

static void mem_abort(size_t n)
{
    fprintf(stderr,
            "ACD00001: out of memory allocating %zu bytes "
            "(%zu bytes in use); aborting\n",
            n, cs_mem_used());
    fflush(stderr);
    abort();
}

static void *mem_account(cs_mem_header_t *h, size_t n)
{
    h->size = n;
    __atomic_add_fetch(&mem_used, n, __ATOMIC_RELAXED);
    return (char *)h + CS_MEM_HEADER;
}

void *cs_malloc(size_t n)
{
    cs_mem_header_t *h;

    if (n > SIZE_MAX - CS_MEM_HEADER) {
        mem_abort(n);
    }
    h = malloc(CS_MEM_HEADER + n);
    if (h == NULL) {
        mem_abort(n);
    }
    return mem_account(h, n);
}

void *cs_calloc(size_t n, size_t size)
{
    void *p;

    if (size != 0 && n > SIZE_MAX / size) {
        mem_abort(SIZE_MAX);
    }
    p = cs_malloc(n * size);
    memset(p, 0, n * size);
    return p;
}

void *cs_realloc(void *p, size_t n)
{
    cs_mem_header_t *h, *nh;
    size_t old;

    if (p == NULL) {
        return cs_malloc(n);
    }
    if (n > SIZE_MAX - CS_MEM_HEADER) {
        mem_abort(n);
    }
    h = (cs_mem_header_t *)((char *)p - CS_MEM_HEADER);
    old = h->size;
    nh = realloc(h, CS_MEM_HEADER + n);
    if (nh == NULL) {
        mem_abort(n);
    }
    __atomic_sub_fetch(&mem_used, old, __ATOMIC_RELAXED);
    return mem_account(nh, n);
}

char *cs_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = cs_malloc(len + 1);

    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void cs_free(void *p)
{
    cs_mem_header_t *h;

    if (p == NULL) {
        return;
    }
    h = (cs_mem_header_t *)((char *)p - CS_MEM_HEADER);
    __atomic_sub_fetch(&mem_used, h->size, __ATOMIC_RELAXED);
    free(h);
}

size_t cs_mem_used(void)
{
    return __atomic_load_n(&mem_used, __ATOMIC_RELAXED);
}

void cs_buf_init(cs_buf_t *b)
{
    b->data = empty_string;
    b->len = 0;
    b->cap = 0;
}

void cs_buf_free(cs_buf_t *b)
{
    if (b->cap > 0) {
        cs_free(b->data);
    }
    cs_buf_init(b);
}

void cs_buf_reset(cs_buf_t *b)
{
    b->len = 0;
    if (b->cap > 0) {
        b->data[0] = '\0';
    }
}

/* Makes room for n more bytes plus the terminating NUL. */
static void buf_grow(cs_buf_t *b, size_t n)
{
    size_t need, cap;

    if (n > SIZE_MAX - b->len - 1) {
        mem_abort(SIZE_MAX);
    }
    need = b->len + n + 1;
    if (need <= b->cap) {
        return;
    }
    cap = b->cap < CS_BUF_MIN_CAP ? CS_BUF_MIN_CAP : b->cap;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    if (b->cap == 0) {
        b->data = cs_malloc(cap);
        b->data[0] = '\0';
    }
    else {
        b->data = cs_realloc(b->data, cap);
    }
    b->cap = cap;
}

void cs_buf_append(cs_buf_t *b, const void *data, size_t n)
{
    if (n == 0) {
        return;
    }
    buf_grow(b, n);
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void cs_buf_printf(cs_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(small)) {
        cs_buf_append(b, small, (size_t)n);
        return;
    }
    buf_grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cs_buf_consume(cs_buf_t *b, size_t n)
{
    if (n >= b->len) {
        cs_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t cs_now_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

int64_t cs_wall_us(void)
{
    return clock_us(CLOCK_REALTIME);
}
