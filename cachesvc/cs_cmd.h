/* ark-cached: the command table.
 *
 * cs_cmd_execute() takes one parsed command (cs_resp.h), finds it by name
 * (case-insensitive), checks authentication and arity, runs it and
 * appends exactly one reply to out. Commands run on the calling I/O
 * thread; the ARK.* commands call the cache engine (cs_cache.h), which
 * may take about a millisecond on the semantic path: the thread's other
 * clients wait meanwhile, which is why more I/O threads give more
 * parallelism.
 *
 *   PING [msg]  ECHO msg  QUIT  AUTH [user] pass  HELLO [2 [AUTH u p]]
 *   COMMAND [DOCS|COUNT|...]  INFO [section]
 *   ARK.LOOKUP ns text [THRESHOLD t] [TRACE tp] -> nil | [payload,
 *                                                    "0.9712", id]
 *   ARK.STORE ns text payload [TTL s] [TRACE tp]  -> id
 *   (TRACE: the caller's W3C traceparent; its trace id goes on the
 *   command's debug log line)
 *   ARK.FORGET ns [id]                 -> removed count
 *   ARK.STATS                          -> [name, "value", ...]
 *
 * Thread safety: any number of threads may execute commands at once;
 * a client's state belongs to the thread that owns the connection.
 */
#ifndef CS_CMD_H
#define CS_CMD_H

#include <stdint.h>

#include "cs_common.h"
#include "cs_resp.h"
#include "cs_server.h"

/* Most statistics ARK.STATS returns. */
#define CS_CMD_STATS_MAX 64

/* Per-connection state the commands read and change. */
typedef struct cs_cmd_client {
    uint64_t id;       /* connection number, for HELLO */
    uint64_t auth_gen; /* cs_auth generation; 0: not yet */
    int quit;          /* set by QUIT: close after the reply */
} cs_cmd_client_t;

/* Runs cmd (argc >= 1) for client cl and appends its reply to out. */
void cs_cmd_execute(cs_server_t *srv, cs_cmd_client_t *cl,
                    const cs_resp_cmd_t *cmd, cs_buf_t *out);

#endif /* CS_CMD_H */
