/* ark-cached: listeners, I/O threads and client connections.
 *
 * The server listens on TCP (bind:port) and/or a Unix socket, plus an
 * optional Prometheus port. It runs N I/O threads, each with its own
 * epoll set; every listening socket is in every thread's set with
 * EPOLLEXCLUSIVE, so one idle thread is woken per new connection, and
 * the thread that accepts a connection owns it for its whole life (no
 * locks on connection state). A thread owning more than its share of
 * clients leaves the listeners until the others catch up, so long-lived
 * connections spread evenly over the threads. A thread reads what a client
 * sent, runs every complete command in order (cs_cmd.c, which calls the cache
 * engine on this same thread), appends the replies and writes as much as the
 * socket takes, asking for EPOLLOUT only when a reply could not be sent
 * at once.
 *
 * Limits per client: max_query_buffer of unparsed input (error and
 * close), max_output_buffer of unsent replies (close), idle timeout;
 * overall: maxclients ("-ERR max number of clients reached").
 *
 * Life cycle (all on the main thread):
 *   cs_server_create   raise the descriptor limit, bind and listen
 *                      (before daemonizing, so errors reach the terminal)
 *   cs_server_start    start the I/O threads, serving cache
 *   cs_server_apply    SIGHUP: new requirepass and timeout, live
 *   cs_server_stop     stop accepting, answer requests already received,
 *                      flush pending replies for up to
 *                      CS_SHUTDOWN_GRACE_MS, join the threads, close the
 *                      listeners, remove the Unix socket file
 *   cs_server_free
 *
 * Thread safety: the life-cycle functions belong to the main thread;
 * cs_server_get_stats, cs_server_info and the accessors may be called
 * from any thread (counters are atomics).
 */
#ifndef CS_SERVER_H
#define CS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "cs_auth.h"
#include "cs_cache.h"
#include "cs_common.h"
#include "cs_config.h"

#ifndef CS_VERSION
#define CS_VERSION "0.1.0"
#endif

/* How long SIGTERM waits for pending replies to be written before the
 * remaining connections are dropped: enough for any reply to a live
 * client, short against systemd's stop timeout. */
#define CS_SHUTDOWN_GRACE_MS 2000

typedef struct cs_server cs_server_t;

typedef struct cs_server_stats {
    uint64_t connected_clients;
    uint64_t maxclients;
    uint64_t total_connections_received;
    uint64_t rejected_connections; /* maxclients reached */
    uint64_t total_commands_processed;
    uint64_t protocol_errors;
    uint64_t query_buffer_disconnections;
    uint64_t output_buffer_disconnections;
    uint64_t timedout_connections;
    uint64_t metrics_requests;
    int64_t uptime_s;
    int threads;
} cs_server_stats_t;

/* Prepares a server for conf (copied; conf may be freed afterwards):
 * raises RLIMIT_NOFILE for maxclients (lowering maxclients, with a
 * warning, when the hard limit is too low), binds and listens.
 * config_file (may be NULL) is shown by INFO. Returns CS_OK with *ps
 * set, or CS_ERR with err set (address in use, a live daemon on the
 * Unix socket, permission denied). */
int cs_server_create(cs_server_t **ps, const cs_core_conf_t *conf,
                     const char *config_file, char *err, size_t errlen);

/* Starts the I/O threads; commands use cache. CS_OK or CS_ERR. */
int cs_server_start(cs_server_t *s, cs_cache_t *cache, char *err,
                    size_t errlen);

/* Applies the settings that can change while running: requirepass
 * (every client must authenticate again when it changed) and timeout.
 * *pass_changed and *timeout_changed say what changed. */
void cs_server_apply(cs_server_t *s, const cs_core_conf_t *conf,
                     int *pass_changed, int *timeout_changed);

/* Graceful stop; see above. Safe to call once after cs_server_start. */
void cs_server_stop(cs_server_t *s);

/* Closes everything left and frees s. */
void cs_server_free(cs_server_t *s);

/* Sums the counters of every thread. */
void cs_server_get_stats(const cs_server_t *s, cs_server_stats_t *st);

/* Appends the network core's INFO sections (Server, Clients, Memory,
 * Stats, Threads) in "# Name\r\nkey:value\r\n" form, each followed by
 * an empty line. */
void cs_server_info(const cs_server_t *s, cs_buf_t *out);

/* Borrowed accessors for the command layer. */
cs_auth_t *cs_server_auth(const cs_server_t *s);
cs_cache_t *cs_server_cache(const cs_server_t *s);

#endif /* CS_SERVER_H */
