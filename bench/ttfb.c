/* Load client for chat completions that measures time to first token.
 *
 * wrk measures only whole responses; a streamed answer needs the time to
 * its first event too. This client keeps N keep-alive connections busy
 * (one thread, epoll, non-blocking sockets): each sends the same POST,
 * reads the answer (Content-Length or chunked), and for every request
 * records two latencies from the moment its first byte was written:
 *
 *   first  the first "data:" event of an event stream, or the first body
 *          byte of a JSON answer (--json);
 *   total  the end of the answer ("data: [DONE]" must have been seen in
 *          a stream, "chat.completion" in a JSON body).
 *
 * After the duration no new request is started; the ones in flight are
 * finished and counted. One summary line on stdout, latencies in
 * microseconds:
 *
 *   BENCH requests=N duration_us=N rps=F (answers finished within the
 *         duration, per second of it) first_p50_us=N first_p90_us=N
 *         first_p99_us=N first_max_us=N p50_us=N p90_us=N p99_us=N
 *         max_us=N events_per_stream=F errors_connect=N errors_read=N
 *         non2xx=N invalid=N
 *
 * "invalid" counts 2xx answers that were not a complete chat completion
 * (no [DONE], wrong content type, ...); the scripts refuse a run that has
 * any error.
 *
 * Usage: ttfb -u http://127.0.0.1:PORT/path -c CONNS -d SECONDS
 *             -b BODY [-H 'Name: value']... [--json]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE  65536
#define HEAD_MAX  16384
#define MAX_HDRS  16

enum { ST_HEAD, ST_BODY_LEN, ST_CHUNK_SIZE, ST_CHUNK_DATA, ST_CHUNK_CRLF,
       ST_TRAILER, ST_BODY_CLOSE };

typedef struct {
    int fd;
    int state;
    int connected;
    size_t sent;                  /* bytes of the request written */
    char head[HEAD_MAX];
    size_t head_len;
    int status;
    int chunked, close_after, is_sse;
    uint64_t remaining;           /* Content-Length or chunk bytes left */
    char tail[16];                /* last body bytes, for split patterns */
    size_t tail_len;
    int seen_first, seen_done, seen_completion;
    unsigned events;
    uint64_t t_start, t_first;
    int trailer_empty;            /* chunk trailer: at start of a line */
} conn_t;

static struct sockaddr_in addr;
static char *request;
static size_t request_len;
static int json_mode;
static uint64_t t_end_issue;
static int stopping;

static uint32_t *lat_first, *lat_total;
static size_t nlat, caplat;
static unsigned long err_connect, err_read, non2xx, invalid;
static unsigned long long total_events;
static unsigned long in_window;       /* finished before the end */

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *msg)
{
    fprintf(stderr, "ttfb: %s\n", msg);
    exit(2);
}

static void record(const conn_t *c, uint64_t t_done)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 65536;
        lat_first = realloc(lat_first, caplat * sizeof(*lat_first));
        lat_total = realloc(lat_total, caplat * sizeof(*lat_total));
        if (!lat_first || !lat_total) {
            die("out of memory");
        }
    }
    lat_first[nlat] = (uint32_t)(c->t_first - c->t_start);
    lat_total[nlat] = (uint32_t)(t_done - c->t_start);
    nlat++;
}

static int conn_open(int epfd, conn_t *c)
{
    struct epoll_event ev;
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        die("socket failed");
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->connected = 0;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0
        && errno != EINPROGRESS) {
        err_connect++;
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void conn_reset_request(conn_t *c)
{
    c->state = ST_HEAD;
    c->sent = 0;
    c->head_len = 0;
    c->status = 0;
    c->chunked = c->close_after = c->is_sse = 0;
    c->remaining = 0;
    c->tail_len = 0;
    c->seen_first = c->seen_done = c->seen_completion = 0;
    c->events = 0;
    c->t_start = 0;
    c->trailer_empty = 0;
}

/* Starts the next request on c (opening a connection if needed), or
 * closes it when the run is over. */
static void on_writable(int epfd, conn_t *c);

static void conn_next(int epfd, conn_t *c)
{
    struct epoll_event ev;

    conn_reset_request(c);
    if (stopping || now_us() >= t_end_issue) {
        stopping = 1;
        if (c->fd >= 0) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
        }
        return;
    }
    if (c->fd < 0) {
        if (conn_open(epfd, c) < 0) {
            return;
        }
        return;                      /* request sent once writable */
    }
    /* the socket is writable in practice: send at once, epoll only when
     * it is not */
    (void)ev;
    on_writable(epfd, c);
}

static void conn_fail(int epfd, conn_t *c, unsigned long *counter)
{
    (*counter)++;
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    conn_next(epfd, c);
}

/* Scans body bytes for "data:" and "data: [DONE]" (also across piece
 * boundaries: the last bytes of the previous piece are kept). */
static void body_bytes(conn_t *c, const char *p, size_t n, uint64_t now)
{
    char scratch[BUF_SIZE + sizeof(c->tail)];
    const char *s, *end, *q;
    size_t tl = c->tail_len;

    if (n == 0) {
        return;
    }
    if (json_mode || !c->is_sse) {
        if (!c->seen_first) {
            c->seen_first = 1;
            c->t_first = now;
        }
        if (!c->seen_completion) {
            memcpy(scratch, c->tail, tl);
            memcpy(scratch + tl, p, n);
            if (memmem(scratch, tl + n, "\"chat.completion\"", 17)) {
                c->seen_completion = 1;
            }
        }
    }
    else {
        memcpy(scratch, c->tail, tl);
        memcpy(scratch + tl, p, n);
        s = scratch;
        end = scratch + tl + n;
        while ((q = memmem(s, (size_t)(end - s), "data:", 5)) != NULL) {
            /* a match entirely inside the kept tail was counted before */
            if ((size_t)(q - scratch) + 5 > tl) {
                c->events++;
                if (!c->seen_first) {
                    c->seen_first = 1;
                    c->t_first = now;
                }
            }
            s = q + 5;
        }
        if (memmem(scratch, tl + n, "data: [DONE]", 12)) {
            c->seen_done = 1;
        }
    }
    /* keep the last bytes: longer than every pattern searched, so a
     * pattern split between two pieces is found in the next call */
    {
        size_t keep = sizeof(c->tail);
        size_t all = tl + n;
        const char *src = scratch;

        if (keep > all) {
            keep = all;
        }
        memmove(c->tail, src + all - keep, keep);
        c->tail_len = keep;
    }
}

static void response_done(int epfd, conn_t *c, uint64_t now)
{
    int ok;

    if (c->status < 200 || c->status > 299) {
        non2xx++;
    }
    else {
        ok = json_mode ? c->seen_completion
                       : (c->is_sse && c->seen_done && c->seen_first);
        if (!ok) {
            invalid++;
        }
        else {
            record(c, now);
            total_events += c->events;
            if (now <= t_end_issue) {
                in_window++;
            }
        }
    }
    if (c->close_after) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    conn_next(epfd, c);
}

/* Parses the response head in c->head; returns 0, or -1 if malformed. */
static int parse_head(conn_t *c)
{
    char *line, *save = NULL, *h;

    c->head[c->head_len] = '\0';
    if (strncmp(c->head, "HTTP/1.", 7) || strlen(c->head) < 12) {
        return -1;
    }
    c->status = atoi(c->head + 9);
    c->remaining = UINT64_MAX;
    for (line = strtok_r(c->head, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        if (!strncasecmp(line, "Content-Length:", 15)) {
            c->remaining = strtoull(line + 15, NULL, 10);
        }
        else if (!strncasecmp(line, "Transfer-Encoding:", 18)) {
            h = line + 18;
            if (strcasestr(h, "chunked")) {
                c->chunked = 1;
            }
        }
        else if (!strncasecmp(line, "Connection:", 11)) {
            if (strcasestr(line + 11, "close")) {
                c->close_after = 1;
            }
        }
        else if (!strncasecmp(line, "Content-Type:", 13)) {
            if (strcasestr(line + 13, "text/event-stream")) {
                c->is_sse = 1;
            }
        }
    }
    if (c->chunked) {
        c->state = ST_CHUNK_SIZE;
        c->remaining = 0;
    }
    else if (c->remaining != UINT64_MAX) {
        c->state = ST_BODY_LEN;
    }
    else {
        c->state = ST_BODY_CLOSE;
        c->close_after = 1;
    }
    return 0;
}

/* Consumes received bytes. Returns 1 when the response is complete (and
 * sets *used), 0 when more is needed, -1 on a protocol error. */
static int consume(conn_t *c, const char *p, size_t n, size_t *used,
                   uint64_t now)
{
    size_t i = 0;

    while (i < n) {
        switch (c->state) {
        case ST_HEAD: {
            size_t take = n - i, k;

            if (c->head_len + take > HEAD_MAX - 1) {
                take = HEAD_MAX - 1 - c->head_len;
            }
            memcpy(c->head + c->head_len, p + i, take);
            /* look for the blank line in what we have */
            for (k = c->head_len >= 3 ? c->head_len - 3 : 0;
                 k + 3 < c->head_len + take; k++) {
                if (!memcmp(c->head + k, "\r\n\r\n", 4)) {
                    break;
                }
            }
            if (k + 3 < c->head_len + take) {
                size_t head_end = k + 4;

                i += head_end - c->head_len;
                c->head_len = head_end;
                if (parse_head(c) < 0) {
                    return -1;
                }
                if (c->state == ST_BODY_LEN && c->remaining == 0) {
                    *used = i;
                    return 1;
                }
                continue;
            }
            c->head_len += take;
            i += take;
            if (c->head_len >= HEAD_MAX - 1) {
                return -1;
            }
            break;
        }
        case ST_BODY_LEN: {
            size_t take = n - i;

            if (take > c->remaining) {
                take = (size_t)c->remaining;
            }
            body_bytes(c, p + i, take, now);
            i += take;
            c->remaining -= take;
            if (c->remaining == 0) {
                *used = i;
                return 1;
            }
            break;
        }
        case ST_BODY_CLOSE:
            body_bytes(c, p + i, n - i, now);
            i = n;
            break;
        case ST_CHUNK_SIZE: {
            char ch = p[i++];

            if (ch == '\n') {
                c->state = c->remaining ? ST_CHUNK_DATA : ST_TRAILER;
                c->trailer_empty = 1;
            }
            else if (c->state == ST_CHUNK_SIZE && ch != '\r' && ch != ';'
                     && c->trailer_empty != 2) {
                int v;

                if (ch >= '0' && ch <= '9') {
                    v = ch - '0';
                }
                else if (ch >= 'a' && ch <= 'f') {
                    v = ch - 'a' + 10;
                }
                else if (ch >= 'A' && ch <= 'F') {
                    v = ch - 'A' + 10;
                }
                else if (ch == ' ' || ch == '\t') {
                    break;
                }
                else {
                    return -1;
                }
                c->remaining = c->remaining * 16 + (uint64_t)v;
            }
            else if (ch == ';') {
                c->trailer_empty = 2;    /* extension: skip to LF */
            }
            break;
        }
        case ST_CHUNK_DATA: {
            size_t take = n - i;

            if (take > c->remaining) {
                take = (size_t)c->remaining;
            }
            body_bytes(c, p + i, take, now);
            i += take;
            c->remaining -= take;
            if (c->remaining == 0) {
                c->state = ST_CHUNK_CRLF;
            }
            break;
        }
        case ST_CHUNK_CRLF:
            if (p[i++] == '\n') {
                c->state = ST_CHUNK_SIZE;
                c->remaining = 0;
                c->trailer_empty = 0;
            }
            break;
        case ST_TRAILER: {
            char ch = p[i++];

            if (ch == '\n') {
                if (c->trailer_empty) {
                    *used = i;
                    return 1;
                }
                c->trailer_empty = 1;
            }
            else if (ch != '\r') {
                c->trailer_empty = 0;
            }
            break;
        }
        }
    }
    *used = i;
    return 0;
}

static void on_readable(int epfd, conn_t *c)
{
    char buf[BUF_SIZE];

    for (;;) {
        ssize_t r = read(c->fd, buf, sizeof(buf));
        uint64_t now;
        size_t off = 0;

        if (r == 0) {
            if (c->state == ST_BODY_CLOSE) {
                c->close_after = 1;
                response_done(epfd, c, now_us());
                return;
            }
            /* closed by the server between requests: reconnect */
            if (c->state == ST_HEAD && c->head_len == 0 && c->sent == 0) {
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                conn_next(epfd, c);
                return;
            }
            conn_fail(epfd, c, &err_read);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            conn_fail(epfd, c, &err_read);
            return;
        }
        now = now_us();
        while (off < (size_t)r) {
            size_t used = 0;
            int rc = consume(c, buf + off, (size_t)r - off, &used, now);

            if (rc < 0) {
                conn_fail(epfd, c, &err_read);
                return;
            }
            off += used;
            if (rc == 0) {
                break;
            }
            response_done(epfd, c, now);
            if (c->fd < 0 || off < (size_t)r) {
                /* closed, or extra bytes with no request outstanding */
                if (c->fd >= 0 && off < (size_t)r) {
                    conn_fail(epfd, c, &err_read);
                }
                return;
            }
            return;
        }
    }
}

static void on_writable(int epfd, conn_t *c)
{
    struct epoll_event ev;

    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof(err);

        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            conn_fail(epfd, c, &err_connect);
            return;
        }
        c->connected = 1;
    }
    if (c->sent == 0) {
        c->t_start = now_us();
    }
    while (c->sent < request_len) {
        ssize_t w = write(c->fd, request + c->sent, request_len - c->sent);

        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev.events = EPOLLIN | EPOLLOUT;
                ev.data.ptr = c;
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                return;
            }
            conn_fail(epfd, c, &err_read);
            return;
        }
        c->sent += (size_t)w;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *v, size_t n, double p)
{
    size_t i;

    if (n == 0) {
        return 0;
    }
    i = (size_t)(p / 100.0 * (double)n);
    if (i >= n) {
        i = n - 1;
    }
    return v[i];
}

static void usage(void)
{
    die("usage: ttfb -u http://127.0.0.1:PORT/path -c CONNS -d SECONDS "
        "-b BODY [-H 'Name: value']... [--json]");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    const char *url = NULL, *body = NULL, *hdrs[MAX_HDRS];
    int nhdrs = 0, nconns = 0, opt, epfd, i, port;
    double secs = 0;
    char host[64], path[1024];
    conn_t *conns;
    uint64_t t0, t1;
    size_t cap;
    struct epoll_event evs[256];

    while ((opt = getopt_long(argc, argv, "u:c:d:b:H:", longopts, NULL))
           != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'c': nconns = atoi(optarg); break;
        case 'd': secs = atof(optarg); break;
        case 'b': body = optarg; break;
        case 'H':
            if (nhdrs == MAX_HDRS) {
                die("too many -H");
            }
            hdrs[nhdrs++] = optarg;
            break;
        case 'j': json_mode = 1; break;
        default: usage();
        }
    }
    if (!url || !body || nconns < 1 || secs <= 0
        || sscanf(url, "http://%63[^:/]:%d%1023s", host, &port, path) != 3) {
        usage();
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        die("-u: the host must be an IPv4 address");
    }
    cap = strlen(body) + strlen(path) + 512;
    for (i = 0; i < nhdrs; i++) {
        cap += strlen(hdrs[i]) + 2;
    }
    request = malloc(cap);
    if (!request) {
        die("out of memory");
    }
    request_len = (size_t)snprintf(request, cap,
        "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json"
        "\r\nAccept: %s\r\nUser-Agent: OpenAI/Python 1.55.0\r\n"
        "Content-Length: %zu\r\n", path, host, port,
        json_mode ? "application/json" : "text/event-stream",
        strlen(body));
    for (i = 0; i < nhdrs; i++) {
        request_len += (size_t)snprintf(request + request_len,
                                        cap - request_len, "%s\r\n", hdrs[i]);
    }
    request_len += (size_t)snprintf(request + request_len, cap - request_len,
                                    "\r\n%s", body);
    signal(SIGPIPE, SIG_IGN);

    epfd = epoll_create1(0);
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (!conns) {
        die("out of memory");
    }
    t0 = now_us();
    t_end_issue = t0 + (uint64_t)(secs * 1e6);
    for (i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conn_reset_request(&conns[i]);
        conn_open(epfd, &conns[i]);
    }
    for (;;) {
        int n, open = 0;

        for (i = 0; i < nconns; i++) {
            open += conns[i].fd >= 0;
        }
        if (!open) {
            break;
        }
        if (now_us() > t_end_issue + 30000000u) {
            fprintf(stderr, "ttfb: %d requests did not finish within 30 s "
                    "after the run\n", open);
            err_read += (unsigned long)open;
            break;
        }
        n = epoll_wait(epfd, evs, 256, 100);
        if (!stopping && now_us() >= t_end_issue) {
            stopping = 1;
        }
        for (i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;

            if (c->fd < 0) {
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (!c->connected && (evs[i].events & EPOLLERR)) {
                    conn_fail(epfd, c, &err_connect);
                    continue;
                }
                if (c->connected) {
                    on_readable(epfd, c);
                    continue;
                }
            }
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) {
                on_writable(epfd, c);
            }
        }
    }
    t1 = now_us();
    qsort(lat_first, nlat, sizeof(*lat_first), cmp_u32);
    qsort(lat_total, nlat, sizeof(*lat_total), cmp_u32);
    printf("BENCH requests=%zu duration_us=%llu rps=%.2f first_p50_us=%u "
           "first_p90_us=%u first_p99_us=%u first_max_us=%u p50_us=%u "
           "p90_us=%u p99_us=%u max_us=%u events_per_stream=%.2f "
           "errors_connect=%lu errors_read=%lu non2xx=%lu invalid=%lu\n",
           nlat, (unsigned long long)(t1 - t0),
           (double)in_window / secs,
           pct(lat_first, nlat, 50), pct(lat_first, nlat, 90),
           pct(lat_first, nlat, 99), nlat ? lat_first[nlat - 1] : 0,
           pct(lat_total, nlat, 50), pct(lat_total, nlat, 90),
           pct(lat_total, nlat, 99), nlat ? lat_total[nlat - 1] : 0,
           nlat ? (double)total_events / (double)nlat : 0.0,
           err_connect, err_read, non2xx, invalid);
    return 0;
}
