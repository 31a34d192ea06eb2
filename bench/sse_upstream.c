/* A fast local "LLM provider" for the streaming benchmarks.
 *
 * One thread, one epoll loop, non-blocking sockets, HTTP/1.1 keep-alive.
 * Every POST /v1/chat/completions is answered like OpenAI does:
 *
 *   - a body with "stream":true gets 200, Content-Type text/event-stream,
 *     Transfer-Encoding chunked, and a realistic chat.completion.chunk
 *     sequence: the role event at once, then the content events, the
 *     finish event, the usage-only chunk when the request asked for it
 *     ("include_usage":true) and "data: [DONE]". With --gap-us G > 0 the
 *     events after the first are sent one per HTTP chunk, G microseconds
 *     apart (a model producing tokens), up to the finish event, which
 *     leaves with the usage chunk and [DONE] in one write (as OpenAI
 *     sends them), so a request that asks for usage waits no longer than
 *     one that does not; with G = 0 the whole stream goes
 *     out in one write (the cheapest possible stream);
 *   - any other body gets the same fixed chat.completion JSON object as
 *     bench/upstream-nginx.conf.in, with Content-Length.
 *
 * GET /stats answers "requests N streams N connections N bad N\n" (on the
 * same port; the benchmark scripts use it to check that the gateways
 * really reached this upstream, then subtract their own probe).
 *
 * Usage: sse_upstream -p PORT [-g GAP_US] [-n CONTENT_EVENTS]
 * Listens on 127.0.0.1 only. Stops on SIGTERM/SIGINT. No Python, no
 * allocation on the request path beyond connection buffers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096
#define IN_MAX    (256 * 1024)       /* request head + body limit */
#define MAX_EVENTS 64                /* SSE events per stream, at most */

typedef struct {
    const char *p;
    size_t n;
} piece_t;

typedef struct {
    int fd;
    char *in;
    size_t in_len;
    char *out;                       /* pending bytes (EAGAIN) */
    size_t out_len, out_cap;
    int streaming;                   /* events left to send */
    int next_event;                  /* index into the stream's events */
    int nevents;
    int usage;                       /* send the usage chunk */
    uint64_t due_us;                 /* when the next event is due */
} conn_t;

static conn_t *conns[MAX_CONNS];
static volatile sig_atomic_t stop;
static unsigned long n_requests, n_streams, n_connections, n_bad;
static long gap_us;
static int n_content = 24;

static const char JSON_BODY[] =
    "{\"id\":\"chatcmpl-9bench0000000000000000000000\",\"object\":"
    "\"chat.completion\",\"created\":1732700000,\"model\":"
    "\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"message\":"
    "{\"role\":\"assistant\",\"content\":\"Paris is the capital of France. "
    "It has been the country's political, economic and cultural centre "
    "for centuries.\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":"
    "\"stop\"}],\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":24,"
    "\"total_tokens\":55,\"prompt_tokens_details\":{\"cached_tokens\":0},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0}},"
    "\"system_fingerprint\":\"fp_0ba0d124f1\"}";

/* The answer's tokens, as the OpenAI tokenizer would roughly cut it. */
static const char *const TOKENS[] = {
    "Paris", " is", " the", " capital", " of", " France", ".", " It",
    " has", " been", " the", " country", "'s", " political", ",",
    " economic", " and", " cultural", " centre", " for", " centuries",
    ".", " Today", " it",
};
#define NTOKENS (sizeof(TOKENS) / sizeof(TOKENS[0]))

#define CHUNK_HEAD "{\"id\":\"chatcmpl-9bench0000000000000000000000\"," \
    "\"object\":\"chat.completion.chunk\",\"created\":1732700000,"       \
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":"       \
    "\"fp_0ba0d124f1\",\"choices\":["

/* events[i]: "data: {...}\n\n" text, built once at start-up */
static char *events[MAX_EVENTS];
static size_t event_len[MAX_EVENTS];
static int n_events_base;            /* without the usage chunk */
static char *usage_event;
static size_t usage_event_len;
static const char DONE_EVENT[] = "data: [DONE]\n\n";

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "sse_upstream: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static char *xasprintf(size_t *plen, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        die("out of memory");
    }
    *plen = (size_t)n;
    return s;
}

static void build_events(void)
{
    int i, k = 0;

    events[k] = xasprintf(&event_len[k], "data: " CHUNK_HEAD
        "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
        "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    k++;
    for (i = 0; i < n_content; i++) {
        events[k] = xasprintf(&event_len[k], "data: " CHUNK_HEAD
            "{\"index\":0,\"delta\":{\"content\":\"%s\"},\"logprobs\":null,"
            "\"finish_reason\":null}]}\n\n", TOKENS[i % NTOKENS]);
        k++;
    }
    events[k] = xasprintf(&event_len[k], "data: " CHUNK_HEAD
        "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":"
        "\"stop\"}]}\n\n");
    k++;
    n_events_base = k;
    usage_event = xasprintf(&usage_event_len, "data: " CHUNK_HEAD
        "],\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":%d,"
        "\"total_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":0},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
        n_content, 31 + n_content);
}

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void conn_close(int epfd, conn_t *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in);
    free(c->out);
    free(c);
}

/* Sends what is pending plus the pieces, buffering what the socket does
 * not take. Returns -1 when the connection failed. */
static int conn_send(int epfd, conn_t *c, const piece_t *pc, int npc)
{
    struct iovec iov[8];
    size_t total = 0, off;
    int n = 0, i;
    ssize_t w;

    if (c->out_len) {
        iov[n].iov_base = c->out;
        iov[n++].iov_len = c->out_len;
        total += c->out_len;
    }
    for (i = 0; i < npc; i++) {
        iov[n].iov_base = (void *)pc[i].p;
        iov[n++].iov_len = pc[i].n;
        total += pc[i].n;
    }
    if (total == 0) {
        return 0;
    }
    w = writev(c->fd, iov, n);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return -1;
        }
        w = 0;
    }
    if ((size_t)w == total) {
        c->out_len = 0;
        return 0;
    }
    /* keep the unsent tail in c->out */
    {
        char *tmp = malloc(total - (size_t)w);
        size_t t = 0;

        if (!tmp) {
            return -1;
        }
        off = (size_t)w;
        for (i = 0; i < n; i++) {
            size_t len = iov[i].iov_len;

            if (off >= len) {
                off -= len;
                continue;
            }
            memcpy(tmp + t, (char *)iov[i].iov_base + off, len - off);
            t += len - off;
            off = 0;
        }
        free(c->out);
        c->out = tmp;
        c->out_len = c->out_cap = t;
    }
    {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
                                  .data.fd = c->fd };
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
    return 0;
}

/* One event as one HTTP chunk ("<hex>\r\n<data>\r\n"). */
static int send_chunked(int epfd, conn_t *c, const char *p, size_t n,
                        int last)
{
    char head[32];
    piece_t pc[3];
    int k = 0;

    pc[k].p = head;
    pc[k++].n = (size_t)snprintf(head, sizeof(head), "%zx\r\n", n);
    pc[k].p = p;
    pc[k++].n = n;
    pc[k].p = last ? "\r\n0\r\n\r\n" : "\r\n";
    pc[k++].n = last ? 7 : 2;
    return conn_send(epfd, c, pc, k);
}

static const char *event_at(const conn_t *c, int i, size_t *len)
{
    if (i < n_events_base) {
        *len = event_len[i];
        return events[i];
    }
    if (c->usage && i == n_events_base) {
        *len = usage_event_len;
        return usage_event;
    }
    *len = sizeof(DONE_EVENT) - 1;
    return DONE_EVENT;
}

/* Sends the events that are due; the whole rest at once when gap is 0,
 * and from the finish event on (finish, usage chunk, [DONE] leave
 * together, as OpenAI sends them: the model's work is done by then). */
static int stream_advance(int epfd, conn_t *c)
{
    if (gap_us == 0 || c->next_event >= n_events_base - 1) {
        /* one chunk holding every remaining event */
        static char *all;
        static size_t all_cap;
        size_t len = 0, n;
        int i;

        for (i = c->next_event; i < c->nevents; i++) {
            const char *e = event_at(c, i, &n);

            if (len + n > all_cap) {
                all_cap = (len + n) * 2;
                all = realloc(all, all_cap);
                if (!all) {
                    die("out of memory");
                }
            }
            memcpy(all + len, e, n);
            len += n;
        }
        c->next_event = c->nevents;
        c->streaming = 0;
        return send_chunked(epfd, c, all, len, 1);
    }
    {
        size_t n;
        const char *e = event_at(c, c->next_event, &n);
        int last = (++c->next_event == c->nevents);

        if (last) {
            c->streaming = 0;
        }
        else {
            c->due_us = now_us() + (uint64_t)gap_us;
        }
        return send_chunked(epfd, c, e, n, last);
    }
}

/* "stream" : true anywhere in the body (the gateways may re-serialize) */
static int body_has_true(const char *body, size_t len, const char *key)
{
    const char *p = body, *end = body + len;
    size_t klen = strlen(key);

    while ((p = memmem(p, (size_t)(end - p), key, klen)) != NULL) {
        p += klen;
        while (p < end && (*p == ' ' || *p == ':' || *p == '\t'
                           || *p == '\n' || *p == '\r')) {
            p++;
        }
        if ((size_t)(end - p) >= 4 && !memcmp(p, "true", 4)) {
            return 1;
        }
    }
    return 0;
}

/* Handles complete requests in c->in. Returns -1 to close. */
static int conn_process(int epfd, conn_t *c)
{
    for (;;) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        size_t head_len, body_len = 0, total;
        const char *cl, *body;
        char stats[160];
        piece_t pc[3];

        if (c->streaming) {
            return 0;   /* pipelined request: answered after the stream */
        }
        if (!end) {
            return c->in_len >= IN_MAX ? -1 : 0;
        }
        head_len = (size_t)(end - c->in) + 4;
        cl = memmem(c->in, head_len, "\r\nContent-Length:", 17);
        if (!cl) {
            cl = memmem(c->in, head_len, "\r\ncontent-length:", 17);
        }
        if (cl) {
            body_len = strtoul(cl + 17, NULL, 10);
        }
        else if (memmem(c->in, head_len, "chunked", 7)) {
            n_bad++;
            return -1;              /* not needed by any gateway here */
        }
        total = head_len + body_len;
        if (total > IN_MAX) {
            n_bad++;
            return -1;
        }
        if (c->in_len < total) {
            return 0;
        }
        body = c->in + head_len;
        if (!strncmp(c->in, "GET /stats ", 11)) {
            int n = snprintf(stats, sizeof(stats),
                             "requests %lu streams %lu connections %lu "
                             "bad %lu\n", n_requests, n_streams,
                             n_connections, n_bad);
            char head[128];

            pc[0].p = head;
            pc[0].n = (size_t)snprintf(head, sizeof(head),
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                "Content-Length: %d\r\n\r\n", n);
            pc[1].p = stats;
            pc[1].n = (size_t)n;
            if (conn_send(epfd, c, pc, 2) < 0) {
                return -1;
            }
        }
        else if (strncmp(c->in, "POST /v1/chat/completions ", 26)) {
            static const char nf[] = "HTTP/1.1 404 Not Found\r\n"
                "Content-Length: 0\r\n\r\n";

            n_bad++;
            pc[0].p = nf;
            pc[0].n = sizeof(nf) - 1;
            if (conn_send(epfd, c, pc, 1) < 0) {
                return -1;
            }
        }
        else if (body_has_true(body, body_len, "\"stream\"")) {
            static const char sh[] = "HTTP/1.1 200 OK\r\n"
                "Content-Type: text/event-stream; charset=utf-8\r\n"
                "Transfer-Encoding: chunked\r\n"
                "Cache-Control: no-cache\r\n"
                "openai-processing-ms: 21\r\n"
                "x-request-id: req_9bench000000000000000000000\r\n\r\n";

            n_requests++;
            n_streams++;
            c->usage = body_has_true(body, body_len, "\"include_usage\"");
            c->nevents = n_events_base + 1 + (c->usage ? 1 : 0);
            c->next_event = 0;
            c->streaming = 1;
            pc[0].p = sh;
            pc[0].n = sizeof(sh) - 1;
            if (conn_send(epfd, c, pc, 1) < 0) {
                return -1;
            }
            /* the first event at once: the time to first token */
            if (gap_us == 0) {
                if (stream_advance(epfd, c) < 0) {
                    return -1;
                }
            }
            else {
                size_t n;
                const char *e = event_at(c, 0, &n);

                c->next_event = 1;
                c->due_us = now_us() + (uint64_t)gap_us;
                if (send_chunked(epfd, c, e, n, 0) < 0) {
                    return -1;
                }
            }
        }
        else {
            char head[160];

            n_requests++;
            pc[0].p = head;
            pc[0].n = (size_t)snprintf(head, sizeof(head),
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                "openai-processing-ms: 21\r\n"
                "Content-Length: %zu\r\n\r\n", sizeof(JSON_BODY) - 1);
            pc[1].p = JSON_BODY;
            pc[1].n = sizeof(JSON_BODY) - 1;
            if (conn_send(epfd, c, pc, 2) < 0) {
                return -1;
            }
        }
        memmove(c->in, c->in + total, c->in_len - total);
        c->in_len -= total;
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    int port = 0, lfd, epfd, one = 1, opt;
    struct sockaddr_in sa;
    struct epoll_event ev, evs[256];
    struct sigaction sact;

    while ((opt = getopt(argc, argv, "p:g:n:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'g': gap_us = atol(optarg); break;
        case 'n': n_content = atoi(optarg); break;
        default:
            die("usage: sse_upstream -p PORT [-g GAP_US] [-n EVENTS]");
        }
    }
    if (port <= 0 || port > 65535 || gap_us < 0 || n_content < 1
        || n_content > MAX_EVENTS - 4) {
        die("usage: sse_upstream -p PORT [-g GAP_US] [-n EVENTS 1..%d]",
            MAX_EVENTS - 4);
    }
    build_events();
    memset(&sact, 0, sizeof(sact));
    sact.sa_handler = on_signal;
    sigaction(SIGTERM, &sact, NULL);
    sigaction(SIGINT, &sact, NULL);
    signal(SIGPIPE, SIG_IGN);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0) {
        die("socket: %s", strerror(errno));
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0
        || listen(lfd, 4096) < 0) {
        die("bind/listen on 127.0.0.1:%d: %s", port, strerror(errno));
    }
    epfd = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);

    while (!stop) {
        int timeout = -1, n, i, fd;
        uint64_t now = now_us(), first = UINT64_MAX;

        /* timers: a linear scan is fine for a few hundred connections */
        if (gap_us > 0) {
            for (fd = 0; fd < MAX_CONNS; fd++) {
                conn_t *c = conns[fd];

                if (c && c->streaming && c->next_event > 0) {
                    if (c->due_us <= now) {
                        if (stream_advance(epfd, c) < 0
                            || (!c->streaming && conn_process(epfd, c) < 0)) {
                            conn_close(epfd, c);
                            continue;
                        }
                    }
                    if (c->streaming && c->due_us < first) {
                        first = c->due_us;
                    }
                }
            }
            if (first != UINT64_MAX) {
                now = now_us();
                timeout = first > now ? (int)((first - now + 999) / 1000) : 0;
            }
        }
        n = epoll_wait(epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait: %s", strerror(errno));
        }
        for (i = 0; i < n; i++) {
            conn_t *c;

            fd = evs[i].data.fd;
            if (fd == lfd) {
                int cfd;

                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_CONNS) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one,
                               sizeof(one));
                    c = calloc(1, sizeof(*c));
                    if (!c || !(c->in = malloc(IN_MAX))) {
                        die("out of memory");
                    }
                    c->fd = cfd;
                    conns[cfd] = c;
                    n_connections++;
                    ev.events = EPOLLIN;
                    ev.data.fd = cfd;
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            c = conns[fd];
            if (!c) {
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (conn_send(epfd, c, NULL, 0) < 0) {
                    conn_close(epfd, c);
                    continue;
                }
                if (c->out_len == 0) {
                    ev.events = EPOLLIN;
                    ev.data.fd = fd;
                    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(fd, c->in + c->in_len, IN_MAX - c->in_len);

                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    conn_close(epfd, c);
                    continue;
                }
                if (r > 0) {
                    c->in_len += (size_t)r;
                    if (conn_process(epfd, c) < 0) {
                        conn_close(epfd, c);
                    }
                }
            }
        }
    }
    return 0;
}
