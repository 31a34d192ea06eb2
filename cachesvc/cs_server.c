/* ark-cached: listeners, I/O threads and client connections (see
 * cs_server.h for the model).
 *
 * Data flow of one client request, all on the thread that owns the
 * connection:
 *
 *   EPOLLIN -> read() up to CS_READ_CHUNK bytes into the thread's read
 *   buffer. If the connection holds no partial command, parse straight
 *   from there (no copy); otherwise append to the connection's input
 *   buffer and parse from it. Each complete command runs (cs_cmd.c) and
 *   its reply is appended to the thread's write buffer, or to the
 *   connection's output buffer when older replies are still unsent (so
 *   replies keep their order). Bytes of an incomplete command are kept
 *   in the connection's input buffer. Then write() as much as the socket
 *   takes; what is left moves to the connection's output buffer and the
 *   connection asks for EPOLLOUT until it has drained.
 *
 * An idle connection therefore holds no buffer memory at all.
 *
 * Every object registered in an epoll set starts with an object kind, so
 * one pointer in epoll_data tells the loop what became ready: a
 * listener, the thread's wake-up eventfd, a RESP client or a metrics
 * (HTTP) client. Each thread also keeps a list of its connections for
 * the once-a-second idle check and for shutdown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cs_cmd.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_resp.h"
#include "cs_server.h"

/* Bytes read from a socket per readiness event: big enough that a
 * pipelined burst or a large payload needs few calls, small enough to
 * keep per-thread memory and per-client fairness (one read per client
 * per loop turn). */
#define CS_READ_CHUNK (64 * 1024)

/* Events taken from epoll_wait at once. */
#define CS_EPOLL_EVENTS 256

/* Connections accepted per listener readiness: a few, then the thread
 * serves its clients again; other idle threads are woken for the rest
 * (EPOLLEXCLUSIVE), which spreads a burst of connects over threads. */
#define CS_ACCEPT_BATCH 8

/* listen() backlog (the kernel caps it at net.core.somaxconn). */
#define CS_LISTEN_BACKLOG 511

/* Connections a thread may own above its share before it stops
 * accepting (see balance()): small, so threads stay within a few
 * connections of each other; not zero, so threads do not leave and
 * re-join the listeners on every connect. */
#define CS_ACCEPT_SLACK 2

/* Period of the idle-timeout check. */
#define CS_CRON_MS 1000

/* Emptied connection buffers larger than this are freed, so a client
 * that once sent a big payload does not keep the memory. */
#define CS_CONN_BUF_KEEP (16 * 1024)

/* Descriptors kept free besides clients: listeners, epoll and eventfd
 * per thread, the log, the engine's own sockets and files. */
#define CS_RESERVED_FDS 128

/* TCP keepalive idle time: finds peers that vanished without a FIN
 * (a crashed httpd host) within minutes instead of hours. */
#define CS_TCP_KEEPALIVE_S 300

/* Longest printable peer address ("[v6]:port"). */
#define CS_ADDR_MAX 64

typedef enum {
    OBJ_LISTENER,         /* RESP listener (TCP or Unix) */
    OBJ_METRICS_LISTENER, /* HTTP listener for /metrics */
    OBJ_WAKE,             /* a thread's eventfd */
    OBJ_CLIENT,           /* RESP connection */
    OBJ_HTTP              /* metrics connection */
} obj_kind_t;

typedef struct cs_listener {
    obj_kind_t kind;
    int fd;
    int is_unix;
} cs_listener_t;

/* Counters of one thread: written by it alone, read by anyone. */
typedef struct cs_thread_stats {
    uint64_t clients;
    uint64_t connections;
    uint64_t commands;
    uint64_t protocol_errors;
    uint64_t query_limit;
    uint64_t output_limit;
    uint64_t timedout;
    uint64_t metrics_requests;
} cs_thread_stats_t;

typedef struct cs_thread cs_thread_t;

typedef struct cs_conn {
    obj_kind_t kind; /* OBJ_CLIENT or OBJ_HTTP */
    int fd;
    cs_thread_t *thread;
    struct cs_conn *prev, *next;
    cs_buf_t in;  /* bytes of an incomplete request */
    cs_buf_t out; /* unsent replies, from out_pos */
    size_t out_pos;
    int64_t last_us; /* last read or write */
    uint32_t events; /* registered epoll events */
    int closing;     /* read no more; close once drained */
    cs_resp_reader_t reader;
    cs_cmd_client_t client;
    char addr[CS_ADDR_MAX];
} cs_conn_t;

struct cs_thread {
    obj_kind_t wake_kind; /* OBJ_WAKE: epoll_data for wakefd */
    cs_server_t *srv;
    int index;
    pthread_t tid;
    int started;
    int epfd;
    int wakefd;
    int sparefd;   /* closed to accept and refuse at EMFILE */
    int stopping;  /* seen the stop request */
    int accepting; /* listeners are in epfd */
    cs_conn_t *conns;
    char *rbuf;    /* CS_READ_CHUNK bytes */
    cs_buf_t wbuf; /* replies of the current read */
    cs_resp_cmd_t cmd;
    int64_t last_cron_us;
    cs_thread_stats_t st;
};

struct cs_server {
    cs_core_conf_t conf; /* requirepass wiped; see auth */
    char bind[INET6_ADDRSTRLEN];
    char unixsocket[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char config_file[1024];
    cs_listener_t listeners[3];
    int nlisteners;
    cs_thread_t **threads;
    int nthreads;
    cs_auth_t *auth;
    cs_cache_t *cache;
    int64_t start_us;
    long timeout;        /* atomic: seconds, 0 = none */
    uint64_t connected;  /* atomic: RESP clients */
    uint64_t http_conns; /* atomic: metrics connections */
    uint64_t rejected;   /* atomic */
    uint64_t next_id;    /* atomic: connection numbers */
    int stopping;        /* atomic */
    int64_t stop_deadline_us;
};

static void stat_add(uint64_t *counter, uint64_t n)
{
    __atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

static uint64_t stat_get(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* ---- Listening -------------------------------------------------- */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? CS_ERR : CS_OK;
}

static int listen_tcp(const char *addr, int port, int *pfd, char *err,
                      size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    int fd = -1, on = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(addr, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot use address %s: %s", addr,
                 gai_strerror(rc));
        return CS_ERR;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(): %s", strerror(errno));
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (res->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        snprintf(err, errlen, "cannot bind %s port %d: %s", addr, port,
                 strerror(errno));
        goto fail;
    }
    if (listen(fd, CS_LISTEN_BACKLOG) < 0 || set_nonblock(fd) != CS_OK) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", addr, port,
                 strerror(errno));
        goto fail;
    }
    freeaddrinfo(res);
    *pfd = fd;
    return CS_OK;
fail:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return CS_ERR;
}

/* Refuses a path that is not a socket or where a daemon answers; removes
 * a stale socket file left by a crash. */
static int clear_unix_path(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat sb;
    int fd, rc;

    if (lstat(path, &sb) < 0) {
        return CS_OK;
    }
    if (!S_ISSOCK(sb.st_mode)) {
        snprintf(err, errlen, "unixsocket %s exists and is not a socket", path);
        return CS_ERR;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(): %s", strerror(errno));
        return CS_ERR;
    }
    rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen,
                 "unixsocket %s: another process is listening on it", path);
        return CS_ERR;
    }
    if (unlink(path) < 0) {
        snprintf(err, errlen, "cannot remove stale unixsocket %s: %s", path,
                 strerror(errno));
        return CS_ERR;
    }
    return CS_OK;
}

static int listen_unix(const char *path, unsigned perm, int *pfd, char *err,
                       size_t errlen)
{
    struct sockaddr_un sun;
    mode_t old;
    int fd, rc;

    if (clear_unix_path(path, err, errlen) != CS_OK) {
        return CS_ERR;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(): %s", strerror(errno));
        return CS_ERR;
    }
    /* Created with the final permissions: no window where it is wider. */
    old = umask((mode_t)(~perm & 0777));
    rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc < 0) {
        snprintf(err, errlen, "cannot bind unixsocket %s: %s", path,
                 strerror(errno));
        close(fd);
        return CS_ERR;
    }
    if (chmod(path, (mode_t)perm) < 0 || listen(fd, CS_LISTEN_BACKLOG) < 0 ||
        set_nonblock(fd) != CS_OK) {
        snprintf(err, errlen, "cannot listen on unixsocket %s: %s", path,
                 strerror(errno));
        close(fd);
        unlink(path);
        return CS_ERR;
    }
    *pfd = fd;
    return CS_OK;
}

/* Makes room for maxclients descriptors, or lowers maxclients. */
static int raise_fd_limit(cs_core_conf_t *conf, char *err, size_t errlen)
{
    rlim_t need = (rlim_t)conf->maxclients + CS_HTTP_CONNS_MAX +
                  CS_RESERVED_FDS + 3 * (rlim_t)conf->threads;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need) {
        return CS_OK;
    }
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need
                      ? need
                      : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur >= need) {
        return CS_OK;
    }
    if (rl.rlim_cur <= need - (rlim_t)conf->maxclients) {
        snprintf(err, errlen,
                 "the open files limit (%llu) leaves no room for clients; "
                 "raise it (LimitNOFILE= in the systemd unit)",
                 (unsigned long long)rl.rlim_cur);
        return CS_ERR;
    }
    cs_log(CS_LOG_WARNING,
           CS_LOGNO(00030) "open files limit is %llu: maxclients lowered "
                           "from %d to %d (raise LimitNOFILE to keep it)",
           (unsigned long long)rl.rlim_cur, conf->maxclients,
           (int)(rl.rlim_cur - (need - (rlim_t)conf->maxclients)));
    conf->maxclients = (int)(rl.rlim_cur - (need - (rlim_t)conf->maxclients));
    return CS_OK;
}

int cs_server_create(cs_server_t **ps, const cs_core_conf_t *conf,
                     const char *config_file, char *err, size_t errlen)
{
    cs_server_t *s = cs_calloc(1, sizeof(*s));
    cs_listener_t *l;

    s->conf = *conf;
    snprintf(s->bind, sizeof(s->bind), "%s", conf->bind);
    s->conf.bind = s->bind;
    if (conf->unixsocket != NULL) {
        snprintf(s->unixsocket, sizeof(s->unixsocket), "%s", conf->unixsocket);
        s->conf.unixsocket = s->unixsocket;
    }
    s->conf.pidfile = NULL; /* borrowed strings not needed here */
    s->conf.logfile = NULL;
    snprintf(s->config_file, sizeof(s->config_file), "%s",
             config_file != NULL ? config_file : "");
    cs_auth_create(&s->auth, conf->requirepass);
    cs_config_core_wipe(&s->conf);
    s->timeout = conf->timeout;
    s->start_us = cs_now_us();
    for (int i = 0; i < 3; i++) {
        s->listeners[i].fd = -1;
    }
    if (raise_fd_limit(&s->conf, err, errlen) != CS_OK) {
        goto fail;
    }
    if (s->conf.port != 0) {
        l = &s->listeners[s->nlisteners];
        l->kind = OBJ_LISTENER;
        if (listen_tcp(s->bind, s->conf.port, &l->fd, err, errlen) != CS_OK) {
            goto fail;
        }
        s->nlisteners++;
    }
    if (s->conf.unixsocket != NULL) {
        l = &s->listeners[s->nlisteners];
        l->kind = OBJ_LISTENER;
        l->is_unix = 1;
        if (listen_unix(s->unixsocket, s->conf.unixsocketperm, &l->fd, err,
                        errlen) != CS_OK) {
            goto fail;
        }
        s->nlisteners++;
    }
    if (s->conf.metrics_port != 0) {
        l = &s->listeners[s->nlisteners];
        l->kind = OBJ_METRICS_LISTENER;
        if (listen_tcp(s->bind, s->conf.metrics_port, &l->fd, err, errlen) !=
            CS_OK) {
            goto fail;
        }
        s->nlisteners++;
    }
    *ps = s;
    return CS_OK;
fail:
    cs_server_free(s);
    return CS_ERR;
}

/* ---- Connections ------------------------------------------------ */

static void peer_name(int fd, int is_unix, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    int port = 0;

    if (is_unix) {
        snprintf(out, outlen, "unix");
        return;
    }
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
        snprintf(out, outlen, "?");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
        port = ntohs(a6->sin6_port);
        snprintf(out, outlen, "[%s]:%d", host, port);
        return;
    }
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
              sizeof(host));
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(out, outlen, "%s:%d", host, port);
}

static size_t pending(const cs_conn_t *c)
{
    return c->out.len - c->out_pos;
}

static void conn_close(cs_conn_t *c, const char *why)
{
    cs_thread_t *t = c->thread;
    cs_server_t *s = t->srv;

    if (c->kind == OBJ_CLIENT) {
        cs_log(CS_LOG_DEBUG, CS_LOGNO(00040) "client %llu (%s) closed: %s",
               (unsigned long long)c->client.id, c->addr, why);
        __atomic_sub_fetch(&s->connected, 1, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&t->st.clients, 1, __ATOMIC_RELAXED);
    }
    else {
        __atomic_sub_fetch(&s->http_conns, 1, __ATOMIC_RELAXED);
    }
    close(c->fd); /* also leaves the epoll set */
    if (c->prev != NULL) {
        c->prev->next = c->next;
    }
    else {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    cs_buf_free(&c->in);
    cs_buf_free(&c->out);
    cs_free(c);
}

static cs_conn_t *conn_new(cs_thread_t *t, int fd, obj_kind_t kind, int is_unix)
{
    cs_conn_t *c = cs_calloc(1, sizeof(*c));
    struct epoll_event ev;

    c->kind = kind;
    c->fd = fd;
    c->thread = t;
    cs_buf_init(&c->in);
    cs_buf_init(&c->out);
    cs_resp_reader_init(&c->reader, t->srv->conf.max_bulk_len);
    c->client.id = __atomic_add_fetch(&t->srv->next_id, 1, __ATOMIC_RELAXED);
    c->last_us = cs_now_us();
    peer_name(fd, is_unix, c->addr, sizeof(c->addr));
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
    c->events = EPOLLIN;
    ev.events = c->events;
    ev.data.ptr = c;
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        cs_log(CS_LOG_ERROR, CS_LOGNO(00041) "epoll_ctl(ADD): %s",
               strerror(errno));
    }
    return c;
}

/* Registers the events the connection now needs, or closes it when it
 * is closing and has nothing left to send. Returns 0 if closed. */
static int conn_update(cs_conn_t *c, const char *why)
{
    struct epoll_event ev;
    uint32_t want = 0;

    if (c->closing && pending(c) == 0) {
        conn_close(c, why);
        return 0;
    }
    if (!c->closing) {
        want |= EPOLLIN;
    }
    if (pending(c) > 0) {
        want |= EPOLLOUT;
    }
    if (want != c->events) {
        ev.events = want;
        ev.data.ptr = c;
        epoll_ctl(c->thread->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->events = want;
    }
    return 1;
}

/* Writes from buf; returns bytes written, or -1 on a fatal error. */
static ssize_t write_some(int fd, const char *buf, size_t len)
{
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        n = write(fd, buf + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        return -1;
    }
    return (ssize_t)done;
}

/* Sends the connection's output buffer. Returns CS_ERR if the peer is
 * gone. */
static int conn_flush(cs_conn_t *c)
{
    ssize_t n;

    if (pending(c) == 0) {
        return CS_OK;
    }
    n = write_some(c->fd, c->out.data + c->out_pos, pending(c));
    if (n < 0) {
        return CS_ERR;
    }
    if (n > 0) {
        c->last_us = cs_now_us();
    }
    c->out_pos += (size_t)n;
    if (c->out_pos == c->out.len) {
        c->out_pos = 0;
        if (c->out.cap > CS_CONN_BUF_KEEP) {
            cs_buf_free(&c->out);
        }
        else {
            cs_buf_reset(&c->out);
        }
    }
    else if (c->out_pos > c->out.len / 2) {
        cs_buf_consume(&c->out, c->out_pos);
        c->out_pos = 0;
    }
    return CS_OK;
}

/* Runs the complete commands in data[0..len) for c, replies into out.
 * Returns the bytes used; sets *killed when c must be dropped at once
 * (output limit). */
static size_t run_commands(cs_thread_t *t, cs_conn_t *c, const char *data,
                           size_t len, cs_buf_t *out, int *killed)
{
    cs_server_t *s = t->srv;
    size_t pos = 0, used;
    cs_resp_status_t st;

    while (pos < len && !c->closing) {
        st = cs_resp_parse(&c->reader, data + pos, len - pos, &t->cmd, &used);
        pos += used;
        if (st == CS_RESP_NEED_MORE) {
            break;
        }
        if (st == CS_RESP_PROTOCOL_ERROR) {
            cs_resp_add_errorf(out, "ERR Protocol error: %s", c->reader.errstr);
            stat_add(&t->st.protocol_errors, 1);
            cs_log(CS_LOG_INFO,
                   CS_LOGNO(00042) "client %llu (%s): protocol error: %s",
                   (unsigned long long)c->client.id, c->addr, c->reader.errstr);
            c->closing = 1;
            break;
        }
        cs_cmd_execute(s, &c->client, &t->cmd, out);
        stat_add(&t->st.commands, 1);
        if (c->client.quit) {
            c->closing = 1;
        }
        if (out->len + pending(c) > s->conf.max_output_buffer) {
            stat_add(&t->st.output_limit, 1);
            cs_log(CS_LOG_INFO,
                   CS_LOGNO(00043) "client %llu (%s): output buffer above "
                                   "max_output_buffer (%zu bytes); closing",
                   (unsigned long long)c->client.id, c->addr,
                   s->conf.max_output_buffer);
            *killed = 1;
            break;
        }
    }
    return pos;
}

/* Reads and serves what the client sent. Returns 0 if the connection
 * was closed. */
static int client_readable(cs_thread_t *t, cs_conn_t *c)
{
    cs_server_t *s = t->srv;
    const char *data;
    size_t len, used, rest;
    cs_buf_t *out;
    ssize_t n;
    int killed = 0;

    n = read(c->fd, t->rbuf, CS_READ_CHUNK);
    if (n == 0) {
        /* The peer is done sending. It may still read (a pipe into nc):
         * finish sending what it asked for, then close. */
        c->closing = 1;
        cs_buf_free(&c->in);
        return conn_update(c, "closed by peer");
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c, strerror(errno));
            return 0;
        }
        return 1;
    }
    c->last_us = cs_now_us();
    if (c->in.len == 0) {
        data = t->rbuf;
        len = (size_t)n;
    }
    else {
        cs_buf_append(&c->in, t->rbuf, (size_t)n);
        data = c->in.data;
        len = c->in.len;
    }
    /* Replies go to the thread's buffer unless older ones still wait. */
    out = pending(c) > 0 ? &c->out : &t->wbuf;
    if (t->wbuf.cap > CS_READ_CHUNK * 4) {
        cs_buf_free(&t->wbuf);
    }
    cs_buf_reset(&t->wbuf);
    used = run_commands(t, c, data, len, out, &killed);
    if (killed) {
        conn_close(c, "output buffer limit");
        return 0;
    }
    rest = len - used;
    if (c->in.len == 0) {
        cs_buf_append(&c->in, data + used, rest);
    }
    else {
        cs_buf_consume(&c->in, used);
    }
    if (c->in.len == 0 && c->in.cap > CS_CONN_BUF_KEEP) {
        cs_buf_free(&c->in);
    }
    if (!c->closing && c->in.len > s->conf.max_query_buffer) {
        cs_resp_add_errorf(out,
                           "ERR Protocol error: query buffer above "
                           "max_query_buffer (%zu bytes)",
                           s->conf.max_query_buffer);
        stat_add(&t->st.query_limit, 1);
        cs_log(CS_LOG_INFO,
               CS_LOGNO(00044) "client %llu (%s): query buffer above "
                               "max_query_buffer (%zu bytes); closing",
               (unsigned long long)c->client.id, c->addr,
               s->conf.max_query_buffer);
        c->closing = 1;
    }
    if (c->closing) {
        cs_buf_free(&c->in);
    }
    if (out == &t->wbuf && t->wbuf.len > 0) {
        n = write_some(c->fd, t->wbuf.data, t->wbuf.len);
        if (n < 0) {
            conn_close(c, "write error");
            return 0;
        }
        if (n > 0) {
            c->last_us = cs_now_us();
        }
        cs_buf_append(&c->out, t->wbuf.data + n, t->wbuf.len - (size_t)n);
    }
    else if (conn_flush(c) != CS_OK) {
        conn_close(c, "write error");
        return 0;
    }
    return conn_update(c, c->client.quit ? "quit" : "protocol error or limit");
}

/* Returns 0 if the connection was closed. */
static int conn_writable(cs_conn_t *c)
{
    if (conn_flush(c) != CS_OK) {
        conn_close(c, "write error");
        return 0;
    }
    return conn_update(c, c->client.quit ? "quit" : "drained before close");
}

static void http_readable(cs_thread_t *t, cs_conn_t *c)
{
    cs_http_route_t route;
    ssize_t n;

    n = read(c->fd, t->rbuf, CS_READ_CHUNK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c, "metrics client went away");
        return;
    }
    if (n < 0) {
        return;
    }
    if (c->closing) {
        return; /* ignore anything after the request */
    }
    cs_buf_append(&c->in, t->rbuf, (size_t)n);
    route = cs_metrics_route(c->in.data, c->in.len);
    if (route == CS_HTTP_NEED_MORE) {
        return;
    }
    stat_add(&t->st.metrics_requests, 1);
    cs_metrics_respond(t->srv, route, &c->out);
    cs_buf_free(&c->in);
    c->closing = 1;
    if (conn_flush(c) != CS_OK) {
        conn_close(c, "write error");
        return;
    }
    conn_update(c, "metrics answered");
}

/* Answers a client beyond maxclients and closes it. */
static void refuse(int fd)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";

    if (write(fd, msg, sizeof(msg) - 1) < 0) {
        /* nothing to do: the client is refused either way */
    }
    close(fd);
}

/* ---- Accept balancing -------------------------------------------
 *
 * EPOLLEXCLUSIVE wakes one waiter per new connection, but the kernel
 * queues the event at the first epoll set on the listener's wait queue
 * and moves on only when that set had no thread waiting: with mostly
 * idle threads, the first thread accepts nearly every connection (we
 * measured 495 of 501 on thread 0 of 2) and the others idle, which
 * defeats the point of several threads for long-lived connections such
 * as mod_ark's. So a thread that owns more than its share of the clients
 * leaves the listeners for a while:
 *
 *   share = connected clients / threads (rounded down)
 *   owns > share + CS_ACCEPT_SLACK     -> leave the listeners
 *   not listening and owns <= share   -> join them again
 *
 * Worked example, 4 threads, 40 clients (share 10), slack 2: thread 0
 * takes its 13th client and leaves; threads 1 to 3 go on accepting. When
 * clients close and thread 0 owns 10 or fewer while the share is still
 * 10, it joins again. The least loaded thread always owns at most the
 * share, so someone is always listening; a thread that leaves wakes the
 * least loaded one, which may have left earlier and must re-join now.
 * Connections still belong to the thread that accepted them. */

static int over_share(const cs_thread_t *t)
{
    const cs_server_t *s = t->srv;
    uint64_t share;

    if (s->nthreads < 2) {
        return 0;
    }
    share = stat_get(&s->connected) / (uint64_t)s->nthreads;
    return stat_get(&t->st.clients) > share + CS_ACCEPT_SLACK;
}

static void set_accepting(cs_thread_t *t, int on)
{
    cs_server_t *s = t->srv;
    struct epoll_event ev;
    int i;

    for (i = 0; i < s->nlisteners; i++) {
        ev.events = EPOLLIN | EPOLLEXCLUSIVE;
        ev.data.ptr = &s->listeners[i];
        if (epoll_ctl(t->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
                      s->listeners[i].fd, &ev) < 0) {
            cs_log(CS_LOG_ERROR, CS_LOGNO(00051) "epoll_ctl(listener): %s",
                   strerror(errno));
        }
    }
    t->accepting = on;
}

static void wake_least_loaded(cs_thread_t *t)
{
    cs_server_t *s = t->srv;
    cs_thread_t *best = NULL;
    uint64_t one = 1, n, min = UINT64_MAX;
    int i;

    for (i = 0; i < s->nthreads; i++) {
        if (s->threads[i] == t) {
            continue;
        }
        n = stat_get(&s->threads[i]->st.clients);
        if (n < min) {
            min = n;
            best = s->threads[i];
        }
    }
    if (best != NULL && write(best->wakefd, &one, sizeof(one)) < 0) {
        /* its counter is full: it is awake anyway */
    }
}

static void balance(cs_thread_t *t)
{
    const cs_server_t *s = t->srv;
    uint64_t share;

    if (s->nthreads < 2 || t->stopping) {
        return;
    }
    if (t->accepting && over_share(t)) {
        set_accepting(t, 0);
        wake_least_loaded(t);
        return;
    }
    share = stat_get(&s->connected) / (uint64_t)s->nthreads;
    if (!t->accepting && stat_get(&t->st.clients) <= share) {
        set_accepting(t, 1);
    }
}

static void accept_ready(cs_thread_t *t, cs_listener_t *l)
{
    cs_server_t *s = t->srv;
    cs_conn_t *c;
    int fd, i, on = 1, idle = CS_TCP_KEEPALIVE_S;
    uint64_t now_clients;

    for (i = 0; i < CS_ACCEPT_BATCH; i++) {
        fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: use the spare one to take the
                 * connection off the queue and close it, or the level-
                 * triggered listener would wake us forever. */
                cs_log(CS_LOG_WARNING,
                       CS_LOGNO(00045) "accept: %s; refusing a connection",
                       strerror(errno));
                close(t->sparefd);
                fd = accept(l->fd, NULL, NULL);
                if (fd >= 0) {
                    close(fd);
                }
                t->sparefd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            }
            else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                     errno != EINTR && errno != ECONNABORTED) {
                cs_log(CS_LOG_WARNING, CS_LOGNO(00046) "accept: %s",
                       strerror(errno));
            }
            return;
        }
        if (!l->is_unix) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        }
        if (l->kind == OBJ_METRICS_LISTENER) {
            if (__atomic_add_fetch(&s->http_conns, 1, __ATOMIC_RELAXED) >
                CS_HTTP_CONNS_MAX) {
                __atomic_sub_fetch(&s->http_conns, 1, __ATOMIC_RELAXED);
                close(fd);
                continue;
            }
            conn_new(t, fd, OBJ_HTTP, 0);
            continue;
        }
        now_clients = __atomic_add_fetch(&s->connected, 1, __ATOMIC_RELAXED);
        if (now_clients > (uint64_t)s->conf.maxclients) {
            __atomic_sub_fetch(&s->connected, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&s->rejected, 1, __ATOMIC_RELAXED);
            refuse(fd);
            cs_log(CS_LOG_INFO,
                   CS_LOGNO(00047) "maxclients (%d) reached; connection "
                                   "refused",
                   s->conf.maxclients);
            continue;
        }
        stat_add(&t->st.clients, 1);
        stat_add(&t->st.connections, 1);
        c = conn_new(t, fd, OBJ_CLIENT, l->is_unix);
        cs_log(CS_LOG_DEBUG,
               CS_LOGNO(00048) "client %llu connected from %s (thread %d)",
               (unsigned long long)c->client.id, c->addr, t->index);
        if (over_share(t)) {
            return; /* balance() lets the others take the rest */
        }
    }
}

/* Handles readiness of a connection: output first (it frees buffer
 * space and may close the connection), then input or hang-up. */
static void conn_event(cs_thread_t *t, cs_conn_t *c, uint32_t e)
{
    if ((e & EPOLLOUT) && !conn_writable(c)) {
        return;
    }
    if (!(e & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        return;
    }
    if (c->closing) {
        /* No longer reading: a hang-up means the rest cannot be sent. */
        if (e & (EPOLLHUP | EPOLLERR)) {
            conn_close(c, "peer hung up");
        }
        else if (c->kind == OBJ_HTTP) {
            http_readable(t, c);
        }
        return;
    }
    if (c->kind == OBJ_HTTP) {
        http_readable(t, c);
    }
    else {
        client_readable(t, c);
    }
}

/* ---- I/O threads ------------------------------------------------ */

static void cron(cs_thread_t *t, int64_t now)
{
    long timeout = __atomic_load_n(&t->srv->timeout, __ATOMIC_RELAXED);
    cs_conn_t *c, *next;

    for (c = t->conns; c != NULL; c = next) {
        next = c->next;
        if (c->kind == OBJ_HTTP) {
            if (now - c->last_us > (int64_t)CS_HTTP_TIMEOUT_S * 1000000) {
                conn_close(c, "metrics request timeout");
            }
            continue;
        }
        if (timeout > 0 && now - c->last_us > (int64_t)timeout * 1000000) {
            stat_add(&t->st.timedout, 1);
            conn_close(c, "idle timeout");
        }
    }
}

/* First turn after the stop request: leave the listeners, close idle
 * connections, let the others drain their output. */
static void begin_stop(cs_thread_t *t)
{
    cs_conn_t *c, *next;

    if (t->accepting) {
        set_accepting(t, 0);
    }
    t->stopping = 1;
    for (c = t->conns; c != NULL; c = next) {
        next = c->next;
        /* Requests that reached the socket before the stop still get
         * their answers. */
        if (c->kind == OBJ_CLIENT && !c->closing && !client_readable(t, c)) {
            continue;
        }
        c->closing = 1;
        cs_buf_free(&c->in);
        conn_update(c, "shutdown");
    }
}

static void *thread_main(void *arg)
{
    cs_thread_t *t = arg;
    cs_server_t *s = t->srv;
    struct epoll_event evs[CS_EPOLL_EVENTS];
    char name[16];
    int64_t now;
    int n, i, timeout_ms;
    uint64_t wake;

    snprintf(name, sizeof(name), "ark-io-%d", t->index);
    pthread_setname_np(pthread_self(), name);
    t->last_cron_us = cs_now_us();
    for (;;) {
        timeout_ms = t->stopping ? 50 : CS_CRON_MS;
        n = epoll_wait(t->epfd, evs, CS_EPOLL_EVENTS, timeout_ms);
        if (n < 0 && errno != EINTR) {
            cs_log(CS_LOG_CRIT, CS_LOGNO(00049) "epoll_wait: %s",
                   strerror(errno));
            break;
        }
        for (i = 0; i < n; i++) {
            obj_kind_t *kind = evs[i].data.ptr;
            uint32_t e = evs[i].events;

            switch (*kind) {
            case OBJ_LISTENER:
            case OBJ_METRICS_LISTENER:
                if (!t->stopping) {
                    accept_ready(t, (cs_listener_t *)kind);
                }
                break;
            case OBJ_WAKE:
                if (read(t->wakefd, &wake, sizeof(wake)) < 0) {
                    /* a spurious wake-up: nothing to read */
                }
                break;
            case OBJ_CLIENT:
            case OBJ_HTTP:
                conn_event(t, (cs_conn_t *)kind, e);
                break;
            }
        }
        balance(t);
        now = cs_now_us();
        if (!t->stopping && __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE)) {
            begin_stop(t);
        }
        if (t->stopping && (t->conns == NULL || now >= s->stop_deadline_us)) {
            break;
        }
        if (now - t->last_cron_us >= (int64_t)CS_CRON_MS * 1000) {
            t->last_cron_us = now;
            cron(t, now);
        }
    }
    while (t->conns != NULL) {
        conn_close(t->conns, "shutdown");
    }
    return NULL;
}

static int thread_create(cs_server_t *s, int index, cs_thread_t **pt, char *err,
                         size_t errlen)
{
    cs_thread_t *t = cs_calloc(1, sizeof(*t));
    struct epoll_event ev;
    int i;

    *pt = t;
    t->wake_kind = OBJ_WAKE;
    t->srv = s;
    t->index = index;
    t->wakefd = -1;
    t->sparefd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    t->rbuf = cs_malloc(CS_READ_CHUNK);
    cs_buf_init(&t->wbuf);
    cs_resp_cmd_init(&t->cmd);
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->epfd < 0) {
        snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
        return CS_ERR;
    }
    t->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->wakefd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return CS_ERR;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &t->wake_kind;
    epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wakefd, &ev);
    for (i = 0; i < s->nlisteners; i++) {
        ev.events = EPOLLIN | EPOLLEXCLUSIVE;
        ev.data.ptr = &s->listeners[i];
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->listeners[i].fd, &ev) < 0) {
            snprintf(err, errlen, "epoll_ctl(listener): %s", strerror(errno));
            return CS_ERR;
        }
    }
    t->accepting = 1;
    return CS_OK;
}

static void thread_free(cs_thread_t *t)
{
    if (t == NULL) {
        return;
    }
    while (t->conns != NULL) {
        conn_close(t->conns, "shutdown");
    }
    if (t->epfd >= 0) {
        close(t->epfd);
    }
    if (t->wakefd >= 0) {
        close(t->wakefd);
    }
    if (t->sparefd >= 0) {
        close(t->sparefd);
    }
    cs_free(t->rbuf);
    cs_buf_free(&t->wbuf);
    cs_resp_cmd_free(&t->cmd);
    cs_free(t);
}

int cs_server_start(cs_server_t *s, cs_cache_t *cache, char *err, size_t errlen)
{
    int i, rc;

    s->cache = cache;
    s->nthreads = s->conf.threads;
    s->threads = cs_calloc((size_t)s->nthreads, sizeof(*s->threads));
    for (i = 0; i < s->nthreads; i++) {
        if (thread_create(s, i, &s->threads[i], err, errlen) != CS_OK) {
            return CS_ERR;
        }
    }
    for (i = 0; i < s->nthreads; i++) {
        rc = pthread_create(&s->threads[i]->tid, NULL, thread_main,
                            s->threads[i]);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start I/O thread: %s", strerror(rc));
            cs_server_stop(s);
            return CS_ERR;
        }
        s->threads[i]->started = 1;
    }
    return CS_OK;
}

void cs_server_apply(cs_server_t *s, const cs_core_conf_t *conf,
                     int *pass_changed, int *timeout_changed)
{
    *timeout_changed = __atomic_exchange_n(&s->timeout, conf->timeout,
                                           __ATOMIC_RELAXED) != conf->timeout;
    cs_auth_set(s->auth, conf->requirepass, pass_changed);
}

void cs_server_stop(cs_server_t *s)
{
    uint64_t one = 1;
    int i;

    if (s->threads == NULL) {
        return;
    }
    s->stop_deadline_us = cs_now_us() + (int64_t)CS_SHUTDOWN_GRACE_MS * 1000;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    for (i = 0; i < s->nthreads; i++) {
        if (s->threads[i] != NULL && s->threads[i]->wakefd >= 0 &&
            write(s->threads[i]->wakefd, &one, sizeof(one)) < 0) {
            cs_log(CS_LOG_ERROR, CS_LOGNO(00050) "waking thread %d: %s", i,
                   strerror(errno));
        }
    }
    for (i = 0; i < s->nthreads; i++) {
        if (s->threads[i] != NULL && s->threads[i]->started) {
            pthread_join(s->threads[i]->tid, NULL);
            s->threads[i]->started = 0;
        }
    }
    for (i = 0; i < s->nlisteners; i++) {
        close(s->listeners[i].fd);
        s->listeners[i].fd = -1;
    }
    s->nlisteners = 0;
    if (s->unixsocket[0] != '\0') {
        unlink(s->unixsocket);
        s->unixsocket[0] = '\0';
    }
}

void cs_server_free(cs_server_t *s)
{
    int i;

    if (s == NULL) {
        return;
    }
    if (s->threads != NULL) {
        cs_server_stop(s);
        for (i = 0; i < s->nthreads; i++) {
            thread_free(s->threads[i]);
        }
        cs_free(s->threads);
    }
    for (i = 0; i < 3; i++) {
        if (s->listeners[i].fd >= 0) {
            close(s->listeners[i].fd);
        }
    }
    if (s->nlisteners > 0 && s->unixsocket[0] != '\0') {
        unlink(s->unixsocket);
    }
    cs_auth_free(s->auth);
    cs_free(s);
}

/* ---- Introspection ---------------------------------------------- */

void cs_server_get_stats(const cs_server_t *s, cs_server_stats_t *st)
{
    const cs_thread_stats_t *ts;
    int i;

    memset(st, 0, sizeof(*st));
    st->connected_clients = stat_get(&s->connected);
    st->maxclients = (uint64_t)s->conf.maxclients;
    st->rejected_connections = stat_get(&s->rejected);
    st->uptime_s = (cs_now_us() - s->start_us) / 1000000;
    st->threads = s->nthreads;
    for (i = 0; i < s->nthreads; i++) {
        if (s->threads[i] == NULL) {
            continue;
        }
        ts = &s->threads[i]->st;
        st->total_connections_received += stat_get(&ts->connections);
        st->total_commands_processed += stat_get(&ts->commands);
        st->protocol_errors += stat_get(&ts->protocol_errors);
        st->query_buffer_disconnections += stat_get(&ts->query_limit);
        st->output_buffer_disconnections += stat_get(&ts->output_limit);
        st->timedout_connections += stat_get(&ts->timedout);
        st->metrics_requests += stat_get(&ts->metrics_requests);
    }
}

static void human_bytes(size_t n, char *out, size_t outlen)
{
    const char *units = "BKMGT";
    double v = (double)n;
    int u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0) {
        snprintf(out, outlen, "%zuB", n);
    }
    else {
        snprintf(out, outlen, "%.2f%c", v, units[u]);
    }
}

void cs_server_info(const cs_server_t *s, cs_buf_t *out)
{
    cs_server_stats_t st;
    char human[32];
    size_t mem = cs_mem_used();
    int i;

    cs_server_get_stats(s, &st);
    cs_buf_printf(out,
                  "# Server\r\n"
                  "version:%s\r\n"
                  "multiplexing_api:epoll\r\n"
                  "process_id:%ld\r\n"
                  "tcp_port:%d\r\n"
                  "unixsocket:%s\r\n"
                  "metrics_port:%d\r\n"
                  "uptime_in_seconds:%lld\r\n"
                  "uptime_in_days:%lld\r\n"
                  "threads:%d\r\n"
                  "config_file:%s\r\n"
                  "\r\n",
                  CS_VERSION, (long)getpid(), s->conf.port,
                  s->conf.unixsocket != NULL ? s->conf.unixsocket : "",
                  s->conf.metrics_port, (long long)st.uptime_s,
                  (long long)st.uptime_s / 86400, st.threads, s->config_file);
    cs_buf_printf(out,
                  "# Clients\r\n"
                  "connected_clients:%llu\r\n"
                  "maxclients:%llu\r\n"
                  "rejected_connections:%llu\r\n"
                  "\r\n",
                  (unsigned long long)st.connected_clients,
                  (unsigned long long)st.maxclients,
                  (unsigned long long)st.rejected_connections);
    human_bytes(mem, human, sizeof(human));
    cs_buf_printf(out,
                  "# Memory\r\n"
                  "used_memory:%zu\r\n"
                  "used_memory_human:%s\r\n"
                  "\r\n",
                  mem, human);
    cs_buf_printf(out,
                  "# Stats\r\n"
                  "total_connections_received:%llu\r\n"
                  "total_commands_processed:%llu\r\n"
                  "protocol_errors:%llu\r\n"
                  "query_buffer_disconnections:%llu\r\n"
                  "output_buffer_disconnections:%llu\r\n"
                  "timedout_connections:%llu\r\n"
                  "metrics_requests:%llu\r\n"
                  "\r\n",
                  (unsigned long long)st.total_connections_received,
                  (unsigned long long)st.total_commands_processed,
                  (unsigned long long)st.protocol_errors,
                  (unsigned long long)st.query_buffer_disconnections,
                  (unsigned long long)st.output_buffer_disconnections,
                  (unsigned long long)st.timedout_connections,
                  (unsigned long long)st.metrics_requests);
    cs_buf_printf(out, "# Threads\r\n");
    for (i = 0; i < s->nthreads; i++) {
        if (s->threads[i] == NULL) {
            continue;
        }
        cs_buf_printf(
            out, "io_thread_%d:clients=%llu,commands=%llu\r\n", i,
            (unsigned long long)stat_get(&s->threads[i]->st.clients),
            (unsigned long long)stat_get(&s->threads[i]->st.commands));
    }
    cs_buf_printf(out, "\r\n");
}

cs_auth_t *cs_server_auth(const cs_server_t *s)
{
    return s->auth;
}

cs_cache_t *cs_server_cache(const cs_server_t *s)
{
    return s->cache;
}
