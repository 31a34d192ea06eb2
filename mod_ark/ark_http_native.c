/* Native HTTP/1.1 client for plain http:// upstreams. See
 * ark_http_native.h.
 *
 * Data flow of one transfer (ark_native_perform): the URL is split into
 * authority and path; the authority names an endpoint (created on first
 * use, kept for the life of the process) that holds the cached addresses
 * and a LIFO stack of idle kept-alive sockets. The request head (request
 * line, Host, the caller's headers, Content-Length) is formatted into one
 * buffer and sent with the body in one sendmsg(). Then the loop is
 * poll(POLLIN) -> recv() -> ark_hresp_parse until the response is
 * complete; body pieces go to the caller's on_data straight from the
 * receive buffer. A complete response on a reusable connection puts the
 * socket back on the endpoint's stack.
 *
 * A socket taken from the stack after more than a second of idleness is
 * first checked with a non-blocking MSG_PEEK (as mod_proxy checks a
 * pooled connection): a server that closed it while idle shows as EOF.
 * A close that races with our request, or comes within that second, is
 * caught afterwards: if a reused connection fails before a single
 * response byte arrived, the request is sent once more on a new
 * connection. libcurl does the same.
 *
 * Failure classes follow libcurl's as ark_http.c maps them: resolve and
 * connect errors ARK_HTTP_CONNECT, timeouts ARK_HTTP_TIMEOUT, resets,
 * truncations and bad chunked framing ARK_HTTP_IO, a malformed head
 * ARK_HTTP_OTHER (curl: CURLE_WEIRD_SERVER_REPLY), on_data refusing
 * ARK_HTTP_ABORTED. Details name the host:port, never a header or the
 * URL's path and query (they may carry a provider key).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netdb.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "ark_http_native.h"

/* ============================================================ parser */

enum {
    ST_HEAD = 0,
    ST_LENGTH,
    ST_CLOSE,
    ST_CHUNK_SIZE,
    ST_CHUNK_EXT,
    ST_CHUNK_LF,
    ST_CHUNK_DATA,
    ST_CHUNK_DATA_CR,
    ST_CHUNK_DATA_LF,
    ST_TRAILER,
    ST_DONE,
    ST_ERROR
};

#define HEAD_INITIAL 2048

void ark_hresp_init(ark_hresp_t *rp, int head_request, apr_time_t now,
                    apr_pool_t *p)
{
    memset(rp, 0, sizeof(*rp));
    rp->state = ST_HEAD;
    rp->head_request = head_request;
    rp->now = now;
    rp->pool = p;
}

static ark_hresp_ev_t fail(ark_hresp_t *rp, const char *msg, int io)
{
    rp->state = ST_ERROR;
    rp->error = msg;
    rp->error_io = io;
    return ARK_HRESP_ERROR;
}

/* Trims optional whitespace around [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t')) {
        (*s)++;
    }
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) {
        (*e)--;
    }
}

/* True if the comma-separated list v holds token (case-insensitive). */
static int has_token(const char *v, const char *token)
{
    apr_size_t tlen = strlen(token);

    while (*v) {
        const char *s = v, *e = strchr(v, ',');

        if (!e) {
            e = v + strlen(v);
        }
        v = *e ? e + 1 : e;
        trim(&s, &e);
        if ((apr_size_t)(e - s) == tlen && !strncasecmp(s, token, tlen)) {
            return 1;
        }
    }
    return 0;
}

/* True if the last coding of a Transfer-Encoding value is chunked. */
static int last_is_chunked(const char *v)
{
    const char *e = v + strlen(v), *s;

    while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == ',')) {
        e--;
    }
    s = e;
    while (s > v && s[-1] != ',') {
        s--;
    }
    trim(&s, &e);
    return e - s == 7 && !strncasecmp(s, "chunked", 7);
}

#define NAME_IS(n, nlen, lit) \
    ((nlen) == sizeof(lit) - 1 && !strncasecmp((n), (lit), sizeof(lit) - 1))

/* Parses the complete head in rp->head (it ends with an empty line).
 * Returns 0 for a final response, 1 for an interim one (skipped), or -1
 * after fail(). Lines are NUL-terminated in place. */
static int head_parse(ark_hresp_t *rp)
{
    char *p = rp->head, *end = rp->head + rp->head_len;
    int first = 1, cl_seen = 0, te_seen = 0, chunked = 0, close = 0;
    int ka = 0;
    apr_uint64_t cl = 0;

    rp->content_type = NULL;
    rp->retry_after = 0;
    while (p < end) {
        char *line = p, *eol = memchr(p, '\n', (apr_size_t)(end - p));
        const char *name, *v, *ve, *colon;
        apr_size_t nlen;

        if (!eol) {
            break;                      /* cannot happen: ends in LF */
        }
        p = eol + 1;
        if (eol > line && eol[-1] == '\r') {
            eol--;
        }
        *eol = '\0';
        if (first) {
            const char *d = line + 9;

            first = 0;
            if (strncmp(line, "HTTP/1.", 7) || line[7] < '0'
                || line[7] > '9' || line[8] != ' ' || d[0] < '1'
                || d[0] > '9' || d[1] < '0' || d[1] > '9' || d[2] < '0'
                || d[2] > '9' || (d[3] != ' ' && d[3] != '\0')) {
                fail(rp, "malformed HTTP status line", 0);
                return -1;
            }
            rp->minor = line[7] - '0';
            rp->status = (d[0] - '0') * 100 + (d[1] - '0') * 10
                         + (d[2] - '0');
            continue;
        }
        if (line == eol) {
            break;                      /* the empty line */
        }
        if (*line == ' ' || *line == '\t') {
            continue;                   /* obs-fold: no header we read */
        }
        colon = memchr(line, ':', (apr_size_t)(eol - line));
        if (!colon) {
            continue;                   /* not a header: ignored, as curl */
        }
        name = line;
        nlen = (apr_size_t)(colon - line);
        v = colon + 1;
        ve = eol;
        trim(&v, &ve);
        *(char *)ve = '\0';
        if (NAME_IS(name, nlen, "Content-Type")) {
            rp->content_type = v;
        }
        else if (NAME_IS(name, nlen, "Content-Length")) {
            apr_uint64_t n = 0;
            const char *q = v;

            if (q == ve || ve - q > 18) {
                fail(rp, "malformed Content-Length", 0);
                return -1;
            }
            for (; q < ve; q++) {
                if (*q < '0' || *q > '9') {
                    fail(rp, "malformed Content-Length", 0);
                    return -1;
                }
                n = n * 10 + (apr_uint64_t)(*q - '0');
            }
            if (cl_seen && n != cl) {
                fail(rp, "conflicting Content-Length headers", 0);
                return -1;
            }
            cl = n;
            cl_seen = 1;
        }
        else if (NAME_IS(name, nlen, "Transfer-Encoding")) {
            te_seen = 1;
            chunked = last_is_chunked(v);
        }
        else if (NAME_IS(name, nlen, "Connection")) {
            close |= has_token(v, "close");
            ka |= has_token(v, "keep-alive");
        }
        else if (NAME_IS(name, nlen, "Retry-After")) {
            rp->retry_after = ark_http_retry_after_parse(v, rp->now);
        }
    }
    if (rp->status < 200) {
        if (rp->status == 101 || ++rp->interim > ARK_HRESP_MAX_INTERIM) {
            fail(rp, rp->status == 101 ? "unexpected 101 Switching Protocols"
                                       : "too many interim 1xx responses",
                 0);
            return -1;
        }
        rp->head_len = 0;
        rp->line_len = 0;
        return 1;
    }
    if (rp->head_request || rp->status == 204 || rp->status == 304) {
        rp->body = ARK_HRESP_BODY_NONE;
        rp->state = ST_DONE;
    }
    else if (te_seen) {
        rp->body = chunked ? ARK_HRESP_BODY_CHUNKED : ARK_HRESP_BODY_CLOSE;
        rp->state = chunked ? ST_CHUNK_SIZE : ST_CLOSE;
        rp->remain = 0;
        rp->digits = 0;
    }
    else if (cl_seen) {
        rp->body = ARK_HRESP_BODY_LENGTH;
        rp->remain = cl;
        rp->state = cl ? ST_LENGTH : ST_DONE;
    }
    else {
        rp->body = ARK_HRESP_BODY_CLOSE;
        rp->state = ST_CLOSE;
    }
    rp->keep_alive = !close && (rp->minor >= 1 || ka)
                     && rp->body != ARK_HRESP_BODY_CLOSE
                     && !(te_seen && cl_seen);
    return 0;
}

/* Appends seg bytes to the head buffer, growing it up to the limit. */
static int head_append(ark_hresp_t *rp, const char *seg, apr_size_t n)
{
    if (rp->head_len + n + 1 > rp->head_cap) {
        apr_size_t cap = rp->head_cap ? rp->head_cap : HEAD_INITIAL;
        char *nb;

        while (cap < rp->head_len + n + 1) {
            cap *= 2;
        }
        if (cap > ARK_HRESP_MAX_HEAD + 1) {
            cap = ARK_HRESP_MAX_HEAD + 1;
        }
        if (rp->head_len + n + 1 > cap) {
            return -1;
        }
        nb = apr_palloc(rp->pool, cap);
        if (rp->head_len) {
            memcpy(nb, rp->head, rp->head_len);
        }
        rp->head = nb;
        rp->head_cap = cap;
    }
    memcpy(rp->head + rp->head_len, seg, n);
    rp->head_len += n;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The chunk-size line ended: data, or the trailer after the last
 * chunk. */
static void chunk_size_done(ark_hresp_t *rp)
{
    if (rp->remain == 0) {
        rp->state = ST_TRAILER;
        rp->line_len = 0;
        rp->trailer_len = 0;
    }
    else {
        rp->state = ST_CHUNK_DATA;
    }
}

/* Hands out min(remain, what is there) body bytes. */
static ark_hresp_ev_t body_piece(ark_hresp_t *rp, const char *buf,
                                 apr_size_t len, apr_size_t *i,
                                 apr_size_t *used, const char **piece,
                                 apr_size_t *plen)
{
    apr_size_t n = len - *i;

    if ((apr_uint64_t)n > rp->remain) {
        n = (apr_size_t)rp->remain;
    }
    *piece = buf + *i;
    *plen = n;
    *i += n;
    *used = *i;
    rp->remain -= n;
    return ARK_HRESP_BODY;
}

ark_hresp_ev_t ark_hresp_parse(ark_hresp_t *rp, const char *buf,
                               apr_size_t len, apr_size_t *used,
                               const char **piece, apr_size_t *plen)
{
    apr_size_t i = 0;

    *used = 0;
    *piece = NULL;
    *plen = 0;
    for (;;) {
        switch (rp->state) {
        case ST_ERROR:
            return ARK_HRESP_ERROR;

        case ST_DONE:
            *used = i;
            return ARK_HRESP_DONE;

        case ST_HEAD:
            while (i < len) {
                const char *s = buf + i, *nl;
                apr_size_t n;

                if (rp->head_len == 0 && (*s == '\r' || *s == '\n')) {
                    i++;                /* blank lines before a head */
                    continue;
                }
                nl = memchr(s, '\n', len - i);
                n = nl ? (apr_size_t)(nl - s) + 1 : len - i;
                if (head_append(rp, s, n) != 0) {
                    *used = i;
                    return fail(rp, "response head too large", 0);
                }
                i += n;
                if (nl) {
                    /* a line ended at head_len - 1; it began at line_len */
                    apr_size_t ll = rp->head_len - 1 - rp->line_len;

                    if (ll == 0
                        || (ll == 1 && rp->head[rp->line_len] == '\r')) {
                        /* the empty line (never the first one: blank
                         * lines before a head are skipped above) */
                        int h = head_parse(rp);

                        if (h < 0) {
                            *used = i;
                            return ARK_HRESP_ERROR;
                        }
                        if (h == 0) {
                            *used = i;
                            return ARK_HRESP_HEAD;
                        }
                        continue;       /* interim: the next head */
                    }
                    rp->line_len = rp->head_len;
                }
            }
            *used = i;
            return ARK_HRESP_MORE;

        case ST_LENGTH:
            if (i == len) {
                *used = i;
                return ARK_HRESP_MORE;
            }
            body_piece(rp, buf, len, &i, used, piece, plen);
            if (rp->remain == 0) {
                rp->state = ST_DONE;
            }
            return ARK_HRESP_BODY;

        case ST_CLOSE:
            if (i == len) {
                *used = i;
                return ARK_HRESP_MORE;
            }
            *piece = buf + i;
            *plen = len - i;
            *used = len;
            return ARK_HRESP_BODY;

        case ST_CHUNK_SIZE:
            while (i < len && rp->state == ST_CHUNK_SIZE) {
                char c = buf[i++];
                int h = hexval(c);

                if (h >= 0) {
                    if (rp->remain > (APR_UINT64_MAX >> 4)) {
                        *used = i;
                        return fail(rp, "chunk size too large", 1);
                    }
                    rp->remain = rp->remain * 16 + (apr_uint64_t)h;
                    rp->digits++;
                    continue;
                }
                if (rp->digits == 0) {
                    *used = i;
                    return fail(rp, "malformed chunk size", 1);
                }
                if (c == ';' || c == ' ' || c == '\t') {
                    rp->state = ST_CHUNK_EXT;
                    rp->ext_len = 0;
                }
                else if (c == '\r') {
                    rp->state = ST_CHUNK_LF;
                }
                else if (c == '\n') {
                    chunk_size_done(rp);
                }
                else {
                    *used = i;
                    return fail(rp, "malformed chunk size", 1);
                }
            }
            if (rp->state == ST_CHUNK_SIZE) {
                *used = i;
                return ARK_HRESP_MORE;
            }
            continue;

        case ST_CHUNK_EXT: {
            const char *nl = memchr(buf + i, '\n', len - i);
            apr_size_t n = nl ? (apr_size_t)(nl - (buf + i)) : len - i;

            rp->ext_len += n;
            if (rp->ext_len > ARK_HRESP_MAX_CHUNK_EXT) {
                *used = i;
                return fail(rp, "chunk extension too long", 1);
            }
            if (!nl) {
                *used = len;
                return ARK_HRESP_MORE;
            }
            i += n + 1;
            chunk_size_done(rp);
            continue;
        }

        case ST_CHUNK_LF:
            if (i == len) {
                *used = i;
                return ARK_HRESP_MORE;
            }
            if (buf[i++] != '\n') {
                *used = i;
                return fail(rp, "malformed chunk size line", 1);
            }
            chunk_size_done(rp);
            continue;

        case ST_CHUNK_DATA:
            if (i == len) {
                *used = i;
                return ARK_HRESP_MORE;
            }
            body_piece(rp, buf, len, &i, used, piece, plen);
            if (rp->remain == 0) {
                rp->state = ST_CHUNK_DATA_CR;
            }
            return ARK_HRESP_BODY;

        case ST_CHUNK_DATA_CR:
        case ST_CHUNK_DATA_LF: {
            char c;

            if (i == len) {
                *used = i;
                return ARK_HRESP_MORE;
            }
            c = buf[i++];
            if (c == '\r' && rp->state == ST_CHUNK_DATA_CR) {
                rp->state = ST_CHUNK_DATA_LF;
            }
            else if (c == '\n') {
                rp->state = ST_CHUNK_SIZE;
                rp->remain = 0;
                rp->digits = 0;
            }
            else {
                *used = i;
                return fail(rp, "missing CRLF after chunk data", 1);
            }
            continue;
        }

        case ST_TRAILER:
            while (i < len) {
                char c = buf[i++];

                if (++rp->trailer_len > ARK_HRESP_MAX_HEAD) {
                    *used = i;
                    return fail(rp, "chunked trailer too large", 1);
                }
                if (c == '\n') {
                    if (rp->line_len == 0) {
                        rp->state = ST_DONE;
                        break;
                    }
                    rp->line_len = 0;
                }
                else if (c != '\r') {
                    rp->line_len++;
                }
            }
            if (rp->state == ST_TRAILER) {
                *used = i;
                return ARK_HRESP_MORE;
            }
            continue;

        default:
            return fail(rp, "parser state corrupt", 0);
        }
    }
}

ark_hresp_ev_t ark_hresp_eof(ark_hresp_t *rp)
{
    switch (rp->state) {
    case ST_DONE:
        return ARK_HRESP_DONE;
    case ST_CLOSE:
        rp->state = ST_DONE;
        return ARK_HRESP_DONE;
    case ST_ERROR:
        return ARK_HRESP_ERROR;
    case ST_HEAD:
        if (rp->head_len == 0 && rp->interim == 0) {
            return fail(rp, "empty reply from server", 1);
        }
        return fail(rp, "connection closed in the response head", 1);
    default:
        return fail(rp, "connection closed before the response body was "
                    "complete", 1);
    }
}

/* ------------------------------------------------------- Retry-After */

static int month_of(const char *m)
{
    static const char *const names[12] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
    };
    int i;

    for (i = 0; i < 12; i++) {
        if (!strcmp(m, names[i])) {
            return i;
        }
    }
    return -1;
}

/* Whether only whitespace follows s[n]. */
static int rest_blank(const char *s, int n)
{
    s += n;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return *s == '\0';
}

apr_interval_time_t ark_http_retry_after_parse(const char *v,
                                               apr_time_t now)
{
    const char *s = v;
    apr_time_exp_t tm;
    apr_time_t t;
    char mon[4];
    int day = 0, year = 0, hh = 0, mm = 0, ss = 0, n = 0, m;
    apr_int64_t secs = 0;

    while (*s == ' ' || *s == '\t') {
        s++;
    }
    if (*s >= '0' && *s <= '9') {
        for (; *s >= '0' && *s <= '9'; s++) {
            if (secs < 100000000) {       /* beyond three years: capped */
                secs = secs * 10 + (*s - '0');
            }
        }
        return rest_blank(s, 0) ? apr_time_from_sec(secs) : 0;
    }
    memset(mon, 0, sizeof(mon));
    n = 0;
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (sscanf(s, "%*[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", &day,
               mon, &year, &hh, &mm, &ss, &n) == 6 && n > 0) {
        /* year as given */
    }
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
    else if (n = 0, sscanf(s, "%*[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d "
                           "GMT%n", &day, mon, &year, &hh, &mm, &ss, &n) == 6
             && n > 0) {
        year += year < 70 ? 2000 : 1900;
    }
    /* asctime: Sun Nov  6 08:49:37 1994 */
    else if (n = 0, sscanf(s, "%*[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n",
                           mon, &day, &hh, &mm, &ss, &year, &n) == 6
             && n > 0) {
        /* year as given */
    }
    else {
        return 0;
    }
    m = month_of(mon);
    if (!rest_blank(s, n) || m < 0 || day < 1 || day > 31 || hh > 23
        || mm > 59 || ss > 60 || year < 1970 || year > 9999) {
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = m;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    if (apr_time_exp_gmt_get(&t, &tm) != APR_SUCCESS) {
        return 0;
    }
    secs = (apr_int64_t)apr_time_sec(t) - (apr_int64_t)apr_time_sec(now);
    return secs > 0 ? apr_time_from_sec(secs) : 0;
}

/* ============================================================ client */

#define NATIVE_MAX_ADDRS    8                    /* addresses kept per
                                                  * endpoint */
#define NATIVE_DNS_TTL      apr_time_from_sec(60)  /* as libcurl's cache */
#define NATIVE_READ_BUF     16384                /* one recv() */
#define NATIVE_CANCEL_MS    100                  /* cancel flag checks */
#define NATIVE_CONNECT_DEFAULT apr_time_from_sec(300)  /* libcurl's */
#define NATIVE_MAX_IOV      2                    /* head, body */
#define NATIVE_CHECK_IDLE   apr_time_from_sec(1) /* idle longer: check
                                                  * before reuse */

/* A kept-alive socket and when it went idle. */
typedef struct {
    int fd;
    apr_time_t since;
} idle_conn_t;

/* One upstream host:port. Created on first use and kept until the
 * process ends: there are as many as distinct authorities in the
 * configured provider URLs. Guarded by the client's lock. */
typedef struct {
    const char *authority;       /* "host[:port]" as in the URL */
    const char *host;            /* without IPv6 brackets */
    const char *port;            /* "80" when the URL gives none */
    struct sockaddr_storage addr[NATIVE_MAX_ADDRS];
    socklen_t addrlen[NATIVE_MAX_ADDRS];
    int naddr;
    apr_time_t resolved;
    idle_conn_t *idle;           /* kept-alive sockets, LIFO */
    int n_idle;
} endpoint_t;

struct ark_native_t {
    apr_pool_t *pool;            /* endpoints; used under lock only */
    apr_thread_mutex_t *lock;
    apr_hash_t *endpoints;       /* authority -> endpoint_t */
    int max_idle;                /* per endpoint */
};

typedef struct {
    const char *authority;
    apr_size_t alen;
    const char *host;
    apr_size_t hlen;
    const char *port;
    apr_size_t plen;
    const char *path;            /* from the '/' on, never empty */
} url_t;

/* Splits an http:// URL; -1 for anything left to libcurl (another
 * scheme, user info, a fragment, bytes that are not printable ASCII). */
static int url_split(const char *url, url_t *u)
{
    const char *a, *e, *q;
    long port = 0;

    if (!url || strncasecmp(url, "http://", 7)) {
        return -1;
    }
    for (q = url; *q; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f
            || *q == '#') {
            return -1;
        }
    }
    a = url + 7;
    e = a + strcspn(a, "/?");
    if (e == a || memchr(a, '@', (apr_size_t)(e - a)) || *e == '?') {
        return -1;
    }
    u->authority = a;
    u->alen = (apr_size_t)(e - a);
    u->path = *e ? e : "/";
    if (*a == '[') {
        const char *rb = memchr(a, ']', u->alen);

        if (!rb || rb == a + 1) {
            return -1;
        }
        u->host = a + 1;
        u->hlen = (apr_size_t)(rb - a - 1);
        q = rb + 1;
    }
    else {
        q = memchr(a, ':', u->alen);
        if (!q) {
            q = e;
        }
        u->host = a;
        u->hlen = (apr_size_t)(q - a);
        if (u->hlen == 0) {
            return -1;
        }
    }
    if (q == e) {
        u->port = "80";
        u->plen = 2;
        return 0;
    }
    if (*q != ':' || q + 1 == e) {
        return -1;
    }
    u->port = q + 1;
    u->plen = (apr_size_t)(e - u->port);
    for (q = u->port; q < e; q++) {
        if (*q < '0' || *q > '9' || u->plen > 5) {
            return -1;
        }
        port = port * 10 + (*q - '0');
    }
    return port >= 1 && port <= 65535 ? 0 : -1;
}

static apr_status_t native_cleanup(void *d)
{
    ark_native_t *n = d;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, n->endpoints); hi; hi = apr_hash_next(hi)) {
        endpoint_t *e = apr_hash_this_val(hi);

        while (e->n_idle > 0) {
            close(e->idle[--e->n_idle].fd);
        }
    }
    return APR_SUCCESS;
}

apr_status_t ark_native_create(ark_native_t **pn, int max_idle,
                               apr_pool_t *p)
{
    ark_native_t *n = apr_pcalloc(p, sizeof(*n));
    apr_status_t rv;

    n->max_idle = max_idle > 0 ? max_idle : 64;
    rv = apr_pool_create(&n->pool, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_pool_tag(n->pool, "ark_native");
    rv = apr_thread_mutex_create(&n->lock, APR_THREAD_MUTEX_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n->endpoints = apr_hash_make(n->pool);
    /* on n->pool: runs before the pool's memory (and the stacks) go */
    apr_pool_cleanup_register(n->pool, n, native_cleanup,
                              apr_pool_cleanup_null);
    *pn = n;
    return APR_SUCCESS;
}

int ark_native_handles(const ark_http_req_t *req)
{
    url_t u;

    return url_split(req->url, &u) == 0;
}

static endpoint_t *endpoint_get(ark_native_t *n, const url_t *u)
{
    endpoint_t *e;

    apr_thread_mutex_lock(n->lock);
    e = apr_hash_get(n->endpoints, u->authority, (apr_ssize_t)u->alen);
    if (!e) {
        e = apr_pcalloc(n->pool, sizeof(*e));
        e->authority = apr_pstrmemdup(n->pool, u->authority, u->alen);
        e->host = apr_pstrmemdup(n->pool, u->host, u->hlen);
        e->port = apr_pstrmemdup(n->pool, u->port, u->plen);
        e->idle = apr_pcalloc(n->pool,
                              sizeof(*e->idle) * (apr_size_t)n->max_idle);
        apr_hash_set(n->endpoints, e->authority, (apr_ssize_t)u->alen, e);
    }
    apr_thread_mutex_unlock(n->lock);
    return e;
}

/* Whether an idle kept-alive socket is still usable: nothing to read
 * and not closed by the server. */
static int conn_alive(int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The most recently used idle socket of e, or -1. One idle for less
 * than NATIVE_CHECK_IDLE is not checked (a syscall saved per request
 * under load): servers close kept-alive connections after seconds of
 * idleness, and a close racing with the request is caught by the retry
 * in ark_native_perform. */
static int idle_take(ark_native_t *n, endpoint_t *e, apr_time_t now)
{
    for (;;) {
        idle_conn_t c = { -1, 0 };

        apr_thread_mutex_lock(n->lock);
        if (e->n_idle > 0) {
            c = e->idle[--e->n_idle];
        }
        apr_thread_mutex_unlock(n->lock);
        if (c.fd < 0 || now - c.since < NATIVE_CHECK_IDLE
            || conn_alive(c.fd)) {
            return c.fd;
        }
        close(c.fd);
    }
}

static void idle_put(ark_native_t *n, endpoint_t *e, int fd)
{
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(n->lock);
    if (e->n_idle < n->max_idle) {
        e->idle[e->n_idle].fd = fd;
        e->idle[e->n_idle].since = now;
        e->n_idle++;
        fd = -1;
    }
    apr_thread_mutex_unlock(n->lock);
    if (fd >= 0) {
        close(fd);
    }
}

/* Copies the endpoint's addresses into addr/addrlen, resolving them
 * first when unknown or older than the TTL. Returns the count, or 0
 * with *err set. */
static int endpoint_addrs(ark_native_t *n, endpoint_t *e,
                          struct sockaddr_storage *addr, socklen_t *addrlen,
                          const char **err, apr_pool_t *p)
{
    struct addrinfo hints, *ai = NULL, *it;
    apr_time_t now = apr_time_now();
    int cnt = 0, rc;

    apr_thread_mutex_lock(n->lock);
    if (e->naddr > 0 && now - e->resolved < NATIVE_DNS_TTL) {
        cnt = e->naddr;
        memcpy(addr, e->addr, sizeof(*addr) * (apr_size_t)cnt);
        memcpy(addrlen, e->addrlen, sizeof(*addrlen) * (apr_size_t)cnt);
    }
    apr_thread_mutex_unlock(n->lock);
    if (cnt > 0) {
        return cnt;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(e->host, e->port, &hints, &ai);
    if (rc != 0) {
        *err = apr_psprintf(p, "cannot resolve %s: %s", e->host,
                            gai_strerror(rc));
        return 0;
    }
    for (it = ai; it && cnt < NATIVE_MAX_ADDRS; it = it->ai_next) {
        if (it->ai_addrlen > sizeof(*addr)) {
            continue;
        }
        memcpy(&addr[cnt], it->ai_addr, it->ai_addrlen);
        addrlen[cnt] = (socklen_t)it->ai_addrlen;
        cnt++;
    }
    freeaddrinfo(ai);
    if (cnt == 0) {
        *err = apr_psprintf(p, "cannot resolve %s: no address", e->host);
        return 0;
    }
    apr_thread_mutex_lock(n->lock);
    memcpy(e->addr, addr, sizeof(*addr) * (apr_size_t)cnt);
    memcpy(e->addrlen, addrlen, sizeof(*addrlen) * (apr_size_t)cnt);
    e->naddr = cnt;
    e->resolved = now;
    apr_thread_mutex_unlock(n->lock);
    return cnt;
}

/* Waits for ev on fd until the time `until` (0: no limit). Returns 1
 * when ready, 0 on timeout, -2 once *cancel is set, -1 on a poll error
 * (errno). */
static int wait_fd(int fd, short ev, apr_time_t until, const int *cancel)
{
    for (;;) {
        struct pollfd pfd;
        int ms = -1, rc;

        if (cancel && *cancel) {
            return -2;
        }
        if (until) {
            apr_interval_time_t left = until - apr_time_now();

            if (left <= 0) {
                return 0;
            }
            ms = (int)((left + 999) / 1000);
        }
        if (cancel && (ms < 0 || ms > NATIVE_CANCEL_MS)) {
            ms = NATIVE_CANCEL_MS;
        }
        pfd.fd = fd;
        pfd.events = ev;
        pfd.revents = 0;
        rc = poll(&pfd, 1, ms);
        if (rc > 0) {
            return 1;
        }
        if (rc < 0 && errno != EINTR) {
            return -1;
        }
    }
}

static const char *errstr(int err, apr_pool_t *p)
{
    char buf[128];

    return apr_pstrdup(p, apr_strerror(APR_FROM_OS_ERROR(err), buf,
                                       sizeof(buf)));
}

/* Opens a new connection to e, trying each address in turn until
 * connect_until. Returns the socket, or -1 with res->fail and detail
 * set. */
static int connect_new(ark_native_t *n, endpoint_t *e,
                       apr_time_t connect_until, const int *cancel,
                       ark_http_result_t *res, apr_pool_t *p)
{
    struct sockaddr_storage addr[NATIVE_MAX_ADDRS];
    socklen_t addrlen[NATIVE_MAX_ADDRS];
    const char *err = NULL;
    int cnt, i, last_err = ECONNREFUSED, one = 1;

    cnt = endpoint_addrs(n, e, addr, addrlen, &err, p);
    if (cnt == 0) {
        res->fail = ARK_HTTP_CONNECT;
        res->detail = err;
        return -1;
    }
    for (i = 0; i < cnt; i++) {
        int fd = socket(addr[i].ss_family,
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int w, soerr = 0;
        socklen_t sl = sizeof(soerr);

        if (fd < 0) {
            last_err = errno;
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        if (connect(fd, (struct sockaddr *)&addr[i], addrlen[i]) == 0) {
            return fd;
        }
        if (errno != EINPROGRESS) {
            last_err = errno;
            close(fd);
            continue;
        }
        w = wait_fd(fd, POLLOUT, connect_until, cancel);
        if (w == 0) {
            close(fd);
            res->fail = ARK_HTTP_TIMEOUT;
            res->detail = apr_psprintf(p, "connection to %s timed out",
                                       e->authority);
            return -1;
        }
        if (w == -2) {
            close(fd);
            res->fail = ARK_HTTP_ABORTED;
            res->detail = "cancelled";
            return -1;
        }
        if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
            soerr = errno;
        }
        if (soerr == 0) {
            return fd;
        }
        last_err = soerr;
        close(fd);
    }
    res->fail = ARK_HTTP_CONNECT;
    res->detail = apr_psprintf(p, "cannot connect to %s: %s", e->authority,
                               errstr(last_err, p));
    return -1;
}

/* Formats the request head. Returns NULL if a caller's header holds a
 * CR or LF (it would split the request). */
static char *head_make(const ark_http_req_t *req, const url_t *u,
                       apr_size_t *plen, apr_pool_t *p)
{
    const char *method = req->body ? "POST" : "GET";
    apr_size_t mlen = req->body ? 4 : 3, plen_path = strlen(u->path);
    apr_size_t len, hl[64], *hlens = hl;
    int nh = req->headers ? req->headers->nelts : 0, i;
    char *buf, *o, clbuf[32];
    int cllen = 0;

    if (nh > (int)(sizeof(hl) / sizeof(hl[0]))) {
        hlens = apr_palloc(p, sizeof(apr_size_t) * (apr_size_t)nh);
    }
    len = mlen + 1 + plen_path + sizeof(" HTTP/1.1\r\nHost: ") - 1
          + u->alen + 2 + 2;
    for (i = 0; i < nh; i++) {
        const char *h = APR_ARRAY_IDX(req->headers, i, const char *);

        hlens[i] = strlen(h);
        if (memchr(h, '\r', hlens[i]) || memchr(h, '\n', hlens[i])) {
            return NULL;
        }
        len += hlens[i] + 2;
    }
    if (req->body) {
        /* "Content-Length: N\r\n", the digits written backwards */
        char digits[24];
        int nd = 0;
        apr_size_t v = req->body_len;

        do {
            digits[nd++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        memcpy(clbuf, "Content-Length: ", 16);
        cllen = 16;
        while (nd) {
            clbuf[cllen++] = digits[--nd];
        }
        clbuf[cllen++] = '\r';
        clbuf[cllen++] = '\n';
        len += (apr_size_t)cllen;
    }
    o = buf = apr_palloc(p, len + 1);
    memcpy(o, method, mlen);
    o += mlen;
    *o++ = ' ';
    memcpy(o, u->path, plen_path);
    o += plen_path;
    memcpy(o, " HTTP/1.1\r\nHost: ", sizeof(" HTTP/1.1\r\nHost: ") - 1);
    o += sizeof(" HTTP/1.1\r\nHost: ") - 1;
    memcpy(o, u->authority, u->alen);
    o += u->alen;
    *o++ = '\r';
    *o++ = '\n';
    for (i = 0; i < nh; i++) {
        memcpy(o, APR_ARRAY_IDX(req->headers, i, const char *), hlens[i]);
        o += hlens[i];
        *o++ = '\r';
        *o++ = '\n';
    }
    if (cllen) {
        memcpy(o, clbuf, (apr_size_t)cllen);
        o += cllen;
    }
    *o++ = '\r';
    *o++ = '\n';
    *o = '\0';
    *plen = (apr_size_t)(o - buf);
    return buf;
}

/* One transfer on one connection. */
typedef struct {
    const ark_http_req_t *req;
    const char *authority;
    apr_time_t t0, t_first, deadline;
    int started;                 /* on_data was called */
    int got_bytes;               /* a response byte arrived */
    int reuse;                   /* the connection may be kept */
    ark_hresp_t rp;
    char rbuf[NATIVE_READ_BUF];
} xfer_t;

static void io_fail(xfer_t *x, ark_http_result_t *res, const char *what,
                    int err, apr_pool_t *p)
{
    res->fail = ARK_HTTP_IO;
    res->detail = apr_psprintf(p, "%s %s: %s", what, x->authority,
                               errstr(err, p));
}

static void timeout_fail(xfer_t *x, ark_http_result_t *res, apr_pool_t *p)
{
    res->fail = ARK_HTTP_TIMEOUT;
    res->detail = apr_psprintf(p, "no complete answer from %s within "
                               "%" APR_TIME_T_FMT " ms", x->authority,
                               apr_time_as_msec(x->req->timeout));
}

/* Sends the request on fd and reads the response, feeding on_data.
 * Returns APR_SUCCESS with x->reuse set, or APR_EGENERAL with res->fail
 * and detail set (x->got_bytes tells whether the server answered at
 * all). */
static apr_status_t exchange(xfer_t *x, int fd, const struct iovec *iov_in,
                             int iovcnt, ark_http_result_t *res,
                             apr_pool_t *p)
{
    const ark_http_req_t *req = x->req;
    struct iovec iov[NATIVE_MAX_IOV];
    struct iovec *v = iov;
    struct msghdr mh;

    x->got_bytes = 0;
    x->reuse = 0;
    memcpy(iov, iov_in, sizeof(*iov) * (apr_size_t)iovcnt);
    while (iovcnt > 0) {
        ssize_t r;

        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = v;
        mh.msg_iovlen = (size_t)iovcnt;
        r = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (r < 0) {
            int w;

            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                io_fail(x, res, "cannot send to", errno, p);
                return APR_EGENERAL;
            }
            w = wait_fd(fd, POLLOUT, x->deadline, req->cancel);
            if (w == 0) {
                timeout_fail(x, res, p);
                return APR_EGENERAL;
            }
            if (w == -2) {
                res->fail = ARK_HTTP_ABORTED;
                res->detail = "cancelled";
                return APR_EGENERAL;
            }
            if (w < 0) {
                io_fail(x, res, "cannot send to", errno, p);
                return APR_EGENERAL;
            }
            continue;
        }
        while (iovcnt > 0 && (size_t)r >= v->iov_len) {
            r -= (ssize_t)v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            v->iov_base = (char *)v->iov_base + r;
            v->iov_len -= (size_t)r;
        }
    }

    ark_hresp_init(&x->rp, 0, x->t0, p);
    for (;;) {
        ssize_t r;
        apr_size_t off = 0;
        /* ArkStreamIdleTimeout: silence longer than idle_timeout ends the
         * transfer like the total timeout does */
        apr_time_t idle_until = req->idle_timeout > 0
                                ? apr_time_now() + req->idle_timeout : 0;
        apr_time_t until = !idle_until ? x->deadline
                           : !x->deadline || idle_until < x->deadline
                           ? idle_until : x->deadline;
        int w = wait_fd(fd, POLLIN, until, req->cancel);

        if (w == 0) {
            if (until == idle_until && until != x->deadline) {
                res->fail = ARK_HTTP_TIMEOUT;
                res->detail = apr_psprintf(p, "%s sent nothing for %"
                                           APR_TIME_T_FMT " ms",
                                           x->authority,
                                           apr_time_as_msec(
                                               req->idle_timeout));
                return APR_EGENERAL;
            }
            timeout_fail(x, res, p);
            return APR_EGENERAL;
        }
        if (w == -2) {
            res->fail = ARK_HTTP_ABORTED;
            res->detail = "cancelled";
            return APR_EGENERAL;
        }
        if (w < 0) {
            io_fail(x, res, "cannot receive from", errno, p);
            return APR_EGENERAL;
        }
        r = recv(fd, x->rbuf, sizeof(x->rbuf), 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
                continue;
            }
            io_fail(x, res, "cannot receive from", errno, p);
            return APR_EGENERAL;
        }
        if (r == 0) {
            if (ark_hresp_eof(&x->rp) == ARK_HRESP_DONE) {
                return APR_SUCCESS;       /* body delimited by the close */
            }
            res->fail = ARK_HTTP_IO;
            res->detail = apr_psprintf(p, "%s (%s)", x->rp.error,
                                       x->authority);
            return APR_EGENERAL;
        }
        x->got_bytes = 1;
        for (;;) {
            const char *piece;
            apr_size_t used, plen;
            ark_hresp_ev_t ev = ark_hresp_parse(&x->rp, x->rbuf + off,
                                                (apr_size_t)r - off, &used,
                                                &piece, &plen);

            off += used;
            if (ev == ARK_HRESP_MORE) {
                break;
            }
            if (ev == ARK_HRESP_HEAD) {
                res->status = x->rp.status;
                res->retry_after = x->rp.retry_after;
                continue;
            }
            if (ev == ARK_HRESP_BODY) {
                if (plen == 0) {
                    continue;
                }
                if (!x->started) {
                    x->started = 1;
                    x->t_first = apr_time_now();
                }
                if (req->on_data(req->ctx, x->rp.status,
                                 x->rp.content_type, piece, plen)
                    != APR_SUCCESS) {
                    res->fail = ARK_HTTP_ABORTED;
                    res->detail = "transfer aborted by the receiver";
                    return APR_EGENERAL;
                }
                continue;
            }
            if (ev == ARK_HRESP_DONE) {
                /* bytes after the response: not ours to interpret */
                x->reuse = x->rp.keep_alive && off == (apr_size_t)r;
                return APR_SUCCESS;
            }
            res->fail = x->rp.error_io ? ARK_HTTP_IO : ARK_HTTP_OTHER;
            res->detail = apr_psprintf(p, "%s (%s)", x->rp.error,
                                       x->authority);
            return APR_EGENERAL;
        }
    }
}

apr_status_t ark_native_perform(ark_native_t *n, const ark_http_req_t *req,
                                ark_http_result_t *res, apr_pool_t *p)
{
    xfer_t *x;
    struct iovec iov[NATIVE_MAX_IOV];
    apr_time_t connect_until;
    endpoint_t *e;
    url_t u;
    apr_size_t hlen;
    char *head;
    int attempt, iovcnt = 1;

    if (url_split(req->url, &u) != 0) {
        return APR_ENOTIMPL;         /* res untouched: libcurl's turn */
    }
    x = apr_palloc(p, sizeof(*x));
    memset(res, 0, sizeof(*res));
    x->req = req;
    x->t0 = apr_time_now();
    x->t_first = 0;
    x->started = 0;
    x->deadline = req->timeout > 0 ? x->t0 + req->timeout : 0;
    head = head_make(req, &u, &hlen, p);
    if (!head) {
        res->fail = ARK_HTTP_OTHER;
        res->detail = "a request header holds a line break";
        goto done;
    }
    e = endpoint_get(n, &u);
    x->authority = e->authority;
    iov[0].iov_base = head;
    iov[0].iov_len = hlen;
    if (req->body && req->body_len > 0) {
        iov[1].iov_base = (void *)req->body;
        iov[1].iov_len = req->body_len;
        iovcnt = 2;
    }
    for (attempt = 0; attempt < 2; attempt++) {
        int fd = attempt == 0 ? idle_take(n, e, x->t0) : -1;
        int reused = fd >= 0;

        if (!reused) {
            connect_until = x->t0 + (req->connect_timeout > 0
                                     ? req->connect_timeout
                                     : NATIVE_CONNECT_DEFAULT);
            if (x->deadline && x->deadline < connect_until) {
                connect_until = x->deadline;
            }
            fd = connect_new(n, e, connect_until, req->cancel, res, p);
            if (fd < 0) {
                break;
            }
            res->new_connections++;
        }
        if (exchange(x, fd, iov, iovcnt, res, p) == APR_SUCCESS) {
            if (x->reuse) {
                idle_put(n, e, fd);
            }
            else {
                close(fd);
            }
            break;
        }
        close(fd);
        if (!(reused && res->fail == ARK_HTTP_IO && !x->got_bytes)) {
            break;
        }
        /* a kept-alive connection the server had closed: once more on a
         * new one */
        res->fail = ARK_HTTP_OK;
        res->detail = NULL;
        res->status = 0;
        res->retry_after = 0;
    }

done:
    res->total = apr_time_now() - x->t0;
    res->ttfb = x->started ? x->t_first - x->t0 : res->total;
    if (res->fail == ARK_HTTP_OK && !x->started) {
        /* a response without a body: tell the caller its status */
        if (req->on_data(req->ctx, res->status, NULL, "", 0)
            != APR_SUCCESS) {
            res->fail = ARK_HTTP_ABORTED;
        }
    }
    return res->fail == ARK_HTTP_OK ? APR_SUCCESS : APR_EGENERAL;
}
