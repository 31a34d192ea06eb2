/* ark-cached: the cache engine's lifecycle, as cs_main.c drives it.
 *
 * The network core owns the process (arguments, configuration, signals,
 * sockets, threads); the engine owns the cache (cs_cache.h). These three
 * hooks are the whole contract between the two at start, reload and
 * stop:
 *
 *   main: config loaded, core keys valid, log open, listeners bound,
 *         daemonized, pidfile written, signals blocked in every thread
 *     -> cs_engine_start(cfg, &cache, err)   engine reads its own keys
 *     -> cs_config_check_unused(cfg)         keys nobody read: fatal
 *     -> I/O threads start calling cs_cache_* concurrently
 *   SIGHUP: log reopened, live core settings re-read
 *     -> cs_engine_reopen(cache)
 *   SIGTERM/SIGINT: listeners closed, pending replies flushed, I/O
 *         threads joined (no cs_cache_* call is running or will run)
 *     -> cs_engine_stop(cache)
 *
 * Threads the engine creates inherit a signal mask that blocks SIGTERM,
 * SIGINT and SIGHUP (the main thread waits for them); they must keep it.
 */
#ifndef CS_ENGINE_H
#define CS_ENGINE_H

#include <stddef.h>

#include "cs_cache.h"
#include "cs_config.h"

/* Reads and validates the engine's keys from cfg (cs_config_get_*;
 * strings borrowed from cfg stay valid until after cs_engine_stop),
 * builds the cache and starts whatever it needs (worker threads, Redis
 * connections, index rebuild). Returns CS_OK with *pcache set, or CS_ERR
 * with err (errlen bytes) holding one sentence for the operator, for
 * example "ark-cached.conf:14: default_threshold: expected a number from
 * 0.01 to 1, got 'high'". The daemon then exits with status 1. Called
 * once, on the main thread. */
int cs_engine_start(const cs_config_t *cfg, cs_cache_t **pcache, char *err,
                    size_t errlen);

/* SIGHUP: reopen files the engine writes, reconnect what should be
 * reconnected. Called on the main thread while I/O threads keep calling
 * cs_cache_*. */
void cs_engine_reopen(cs_cache_t *c);

/* Stops the engine's threads, flushes what must be flushed and frees c.
 * Called once, on the main thread, after every I/O thread has ended. */
void cs_engine_stop(cs_cache_t *c);

#endif /* CS_ENGINE_H */
