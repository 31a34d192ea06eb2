/* ark-cached: the password clients give with AUTH (or HELLO ... AUTH).
 *
 * One password (requirepass) for the user "default", as in Redis without
 * ACLs. A client is authenticated for a "generation" of the password:
 * each change on SIGHUP starts a new generation, so every connected
 * client must authenticate again with the new password, and a client
 * that authenticated with the old one cannot slip through afterwards.
 *
 * The comparison takes the same time for every wrong password of a
 * given stored password (no early exit), so response timing does not
 * reveal how many leading bytes matched.
 *
 * Thread safety: every function may be called from any thread; the
 * per-command check (cs_auth_ok) is two atomic loads.
 */
#ifndef CS_AUTH_H
#define CS_AUTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct cs_auth cs_auth_t;

/* Creates the holder with password ("" or NULL: no AUTH needed). The
 * password is copied. */
int cs_auth_create(cs_auth_t **pauth, const char *password);

/* Wipes the password and frees the holder. */
void cs_auth_free(cs_auth_t *a);

/* Replaces the password ("" removes it). *changed is 1 when it differs
 * from the previous one (and clients must authenticate again). */
int cs_auth_set(cs_auth_t *a, const char *password, int *changed);

/* 1 when a password is configured. */
int cs_auth_required(const cs_auth_t *a);

/* 1 when a client holding generation gen (0 before any AUTH) may run
 * commands: no password is configured, or gen is the current one. */
int cs_auth_ok(const cs_auth_t *a, uint64_t gen);

/* Checks a user name (NULL for the one-argument AUTH, which means
 * "default") and password. Returns CS_OK with *gen set to the current
 * generation when they match, else CS_ERR. */
int cs_auth_check(cs_auth_t *a, const char *user, size_t ulen, const char *pass,
                  size_t plen, uint64_t *gen);

#endif /* CS_AUTH_H */
