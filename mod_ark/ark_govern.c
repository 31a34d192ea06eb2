/* Ark governance. See ark_govern.h and docs/limits.md.
 *
 * Redis side: two Lua scripts, run with EVALSHA (EVAL when Redis does not
 * know them yet). Both take the time from Redis (TIME), so every node
 * measures windows on one clock.
 *
 *   ADMIT  P lease_us member n  (kind key limit cost) x n
 *     kinds: g = GCRA take, q = GCRA query (is a provider bucket used up),
 *            c = concurrency lease, b = budget (HGET spend_nano < limit).
 *     Checks every item; only if none fails, applies the takes. Returns
 *     {first failed item (1-based) or 0, its retry_us, now, (a1, a2) per
 *     item}: g remaining/reset_us, q exhausted, c in flight, b spent.
 *
 *   SETTLE P done-key ttl  ops...
 *     done-key (may be ""): SET NX first; when it exists already the
 *     settlement was applied before (a retry after a lost reply) and
 *     nothing is done (returns 0).
 *     a key limit delta  GCRA adjust (settle a reservation, charge)
 *     h key field n      HINCRBY
 *     e key seconds      EXPIRE
 *     z key member       ZREM (release a lease)
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "ark_govern.h"
#include "ark_trace.h"

static const char admit_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local P = tonumber(ARGV[1])\n"
    "local lease_until = now + tonumber(ARGV[2])\n"
    "local member = ARGV[3]\n"
    "local n = tonumber(ARGV[4])\n"
    "local out = {0, 0, now}\n"
    "local apply = {}\n"
    "local function fail(i, retry)\n"
    "  if out[1] == 0 then\n"
    "    out[1] = i\n"
    "    out[2] = retry\n"
    "  end\n"
    "end\n"
    "for i = 0, n - 1 do\n"
    "  local b = 5 + i * 4\n"
    "  local kind, key = ARGV[b], ARGV[b + 1]\n"
    "  local limit, cost = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])\n"
    "  local a1, a2 = 0, 0\n"
    "  if kind == 'g' or kind == 'q' then\n"
    "    local T = math.floor(P / limit)\n"
    "    if T < 1 then T = 1 end\n"
    "    local tat = tonumber(redis.call('GET', key) or '0')\n"
    "    if tat > now + P then tat = now + P end\n"
    "    local base = tat\n"
    "    if base < now then base = now end\n"
    "    if kind == 'q' then\n"
    "      if base + T - now > P then a1 = 1 end\n"
    "    elseif cost > limit then\n"
    "      fail(i + 1, -1)\n"
    "      a1 = math.floor((P - (base - now)) / T)\n"
    "      a2 = base - now\n"
    "    else\n"
    "      local nxt = base + cost * T\n"
    "      if nxt - now > P then\n"
    "        fail(i + 1, nxt - now - P)\n"
    "        a1 = math.floor((P - (base - now)) / T)\n"
    "        a2 = base - now\n"
    "      else\n"
    "        apply[#apply + 1] = {'g', key, nxt}\n"
    "        a1 = math.floor((P - (nxt - now)) / T)\n"
    "        a2 = nxt - now\n"
    "      end\n"
    "    end\n"
    "  elseif kind == 'c' then\n"
    "    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)\n"
    "    local c = redis.call('ZCARD', key)\n"
    "    a1 = c\n"
    "    if c >= limit then\n"
    "      fail(i + 1, 1000000)\n"
    "    else\n"
    "      apply[#apply + 1] = {'c', key}\n"
    "    end\n"
    "  elseif kind == 'b' then\n"
    "    local spent = tonumber(redis.call('HGET', key, 'spend_nano') or '0')\n"
    "    a1 = spent\n"
    "    if spent >= limit then\n"
    "      fail(i + 1, 0)\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = a1\n"
    "  out[#out + 1] = a2\n"
    "end\n"
    "if out[1] == 0 then\n"
    "  for _, a in ipairs(apply) do\n"
    "    if a[1] == 'g' then\n"
    "      redis.call('SET', a[2], string.format('%.0f', a[3]), 'PX',\n"
    "                 math.floor((a[3] - now) / 1000) + 1000)\n"
    "    else\n"
    "      redis.call('ZADD', a[2], string.format('%.0f', lease_until),\n"
    "                 member)\n"
    "      redis.call('PEXPIRE', a[2],\n"
    "                 math.floor((lease_until - now) / 1000) + 60000)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

static const char settle_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local P = tonumber(ARGV[1])\n"
    "if ARGV[2] ~= '' and not redis.call('SET', ARGV[2], '1', 'NX', 'EX',\n"
    "                                    ARGV[3]) then\n"
    "  return 0\n"
    "end\n"
    "local i = 4\n"
    "while i <= #ARGV do\n"
    "  local kind = ARGV[i]\n"
    "  if kind == 'a' then\n"
    "    local key = ARGV[i + 1]\n"
    "    local limit, delta = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])\n"
    "    local T = math.floor(P / limit)\n"
    "    if T < 1 then T = 1 end\n"
    "    local tat = tonumber(redis.call('GET', key) or '0')\n"
    "    if tat > now + P then tat = now + P end\n"
    "    if delta > 0 and tat < now then tat = now end\n"
    "    tat = tat + delta * T\n"
    "    if tat > now then\n"
    "      redis.call('SET', key, string.format('%.0f', tat), 'PX',\n"
    "                 math.floor((tat - now) / 1000) + 1000)\n"
    "    else\n"
    "      redis.call('DEL', key)\n"
    "    end\n"
    "    i = i + 4\n"
    "  elseif kind == 'h' then\n"
    "    redis.call('HINCRBY', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])\n"
    "    i = i + 4\n"
    "  elseif kind == 'e' then\n"
    "    redis.call('EXPIRE', ARGV[i + 1], ARGV[i + 2])\n"
    "    i = i + 3\n"
    "  elseif kind == 'z' then\n"
    "    redis.call('ZREM', ARGV[i + 1], ARGV[i + 2])\n"
    "    i = i + 3\n"
    "  else\n"
    "    return redis.error_reply('ERR ark settle: unknown op ' .. kind)\n"
    "  end\n"
    "end\n"
    "return now\n";

/* Fields of a usage hash, in slot order. */
static const char *const usage_fields[] = {
    ARK_UF_REQUESTS, ARK_UF_PROMPT, ARK_UF_COMPLETION, ARK_UF_CACHED,
    ARK_UF_SPEND, ARK_UF_CACHE_HITS, ARK_UF_SAVED
};
#define NFIELDS 7
#define F_SPEND 4

/* ------------------------------------------------------ shared table */

#define SLOT_ID_MAX 120
#define GOV_MAGIC 0x41524b47u          /* "ARKG" */

typedef struct gov_slot_t {
    _Atomic apr_uint32_t state;        /* 0 free, 1 being claimed, 2 set */
    apr_uint32_t hash;
    char id[SLOT_ID_MAX];
    _Atomic apr_int64_t v[8];          /* a bucket's TAT or count (v[0]),
                                        * or the fields of a usage hash */
} gov_slot_t;

/* A settlement whose call failed after it was sent: Redis may or may
 * not have applied it, so it is replayed later under the same done-key
 * and applied at most once. */
#define PENDING_MAX 2048
#define PENDING_HASHES 4

typedef struct gov_pending_t {
    _Atomic apr_uint32_t state;        /* 0 free, 1 filling, 2 ready,
                                        * 3 being replayed */
    char done[64];                     /* done-key without the prefix */
    int nh;
    char hash[PENDING_HASHES][SLOT_ID_MAX];   /* usage hash ids */
    apr_int64_t v[NFIELDS];
} gov_pending_t;

typedef struct gov_shm_t {
    apr_uint32_t magic;
    apr_uint32_t mask;                 /* slots - 1 */
    _Atomic apr_uint32_t npending;     /* records in state 2 or 3 */
    _Atomic apr_uint64_t uncertain;    /* maybe-applied settlements that
                                        * found the ring full */
    _Atomic int redis_up;
    _Atomic int dirty;                 /* usage waits in some slot */
    _Atomic int flushing;
    _Atomic apr_int64_t buffered_nano, buffered_tokens;
    _Atomic apr_uint64_t fallbacks, flushes, table_full;
    _Atomic apr_uint64_t wait_short;   /* settlements fewer replicas
                                        * confirmed than wait-replicas */
    _Atomic apr_uint64_t refused[ARK_GOV_UNAVAILABLE + 1];
    _Atomic apr_time_t last_log;
    gov_slot_t slots[];
} gov_shm_t;

struct ark_govern_t {
    ark_govern_conf_t conf;
    gov_shm_t *shm;
    ark_cache_client_t *redis;         /* NULL: node-local only */
    char admit_sha[41], settle_sha[41];
    _Atomic apr_uint64_t lease_seq;
    char last_error[256];              /* benign race: for one log line */
};

static int round_slots(int slots)
{
    int n = 64;

    while (n < slots && n < (1 << 24)) {
        n <<= 1;
    }
    return n;
}

apr_size_t ark_govern_shm_size(int slots)
{
    return sizeof(gov_shm_t)
           + sizeof(gov_slot_t) * (apr_size_t)round_slots(slots)
           + sizeof(gov_pending_t) * PENDING_MAX;
}

static gov_pending_t *pending_ring(gov_shm_t *shm)
{
    return (gov_pending_t *)(void *)&shm->slots[shm->mask + 1];
}

void ark_govern_shm_init(void *base, int slots)
{
    gov_shm_t *shm = base;

    memset(base, 0, ark_govern_shm_size(slots));
    shm->mask = (apr_uint32_t)round_slots(slots) - 1;
    atomic_store(&shm->redis_up, 1);
    shm->magic = GOV_MAGIC;
}

static apr_uint32_t fnv1a(const char *s)
{
    apr_uint32_t h = 2166136261u;

    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

/* The slot of id, claimed if create and absent; NULL when the table is
 * full (or id is too long, or absent and !create). */
static gov_slot_t *slot_find(gov_shm_t *shm, const char *id, int create)
{
    apr_uint32_t h = fnv1a(id), n;
    apr_size_t len = strlen(id);

    if (len >= SLOT_ID_MAX) {
        atomic_fetch_add(&shm->table_full, 1);
        return NULL;
    }
    for (n = 0; n <= shm->mask; n++) {
        gov_slot_t *s = &shm->slots[(h + n) & shm->mask];
        apr_uint32_t st = atomic_load(&s->state);

        if (st == 0) {
            apr_uint32_t zero = 0;

            if (!create) {
                return NULL;
            }
            if (atomic_compare_exchange_strong(&s->state, &zero, 1)) {
                s->hash = h;
                memcpy(s->id, id, len + 1);
                atomic_store(&s->state, 2);
                return s;
            }
            st = atomic_load(&s->state);
        }
        while (st == 1) {              /* another process is naming it */
            sched_yield();
            st = atomic_load(&s->state);
        }
        if (s->hash == h && !strcmp(s->id, id)) {
            return s;
        }
    }
    atomic_fetch_add(&shm->table_full, 1);
    return NULL;
}

/* ------------------------------------------------------------- setup */

void ark_govern_conf_init(ark_govern_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->prefix = ARK_GOVERN_DEFAULT_PREFIX;
    c->nodes = 1;
    c->token_estimate = ARK_GOVERN_DEFAULT_ESTIMATE;
    c->lease = ARK_GOVERN_DEFAULT_LEASE;
    c->slots = ARK_GOVERN_DEFAULT_SLOTS;
    c->done_ttl = ARK_GOVERN_DEFAULT_DONE_TTL;
    c->redis.connect_timeout = ARK_GOVERN_DEFAULT_TIMEOUT;
    c->redis.call_timeout = ARK_GOVERN_DEFAULT_TIMEOUT;
    c->redis.breaker_failures = 3;
    c->redis.breaker_cooldown = apr_time_from_sec(1);
}

static void sha1_hex(char out[41], const char *text)
{
    unsigned char d[SHA_DIGEST_LENGTH];
    int i;

    SHA1((const unsigned char *)text, strlen(text), d);
    for (i = 0; i < SHA_DIGEST_LENGTH; i++) {
        apr_snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

apr_status_t ark_govern_create(ark_govern_t **pg,
                               const ark_govern_conf_t *conf, void *shm,
                               apr_pool_t *p)
{
    ark_govern_t *g = apr_pcalloc(p, sizeof(*g));

    g->conf = *conf;
    g->shm = shm;
    if (g->conf.nodes < 1) {
        g->conf.nodes = 1;
    }
    if (!g->shm || g->shm->magic != GOV_MAGIC) {
        return APR_EINVAL;
    }
    if (conf->redis.servers && conf->redis.servers->nelts > 0) {
        ark_cache_client_conf_t rc = conf->redis;

        if (rc.max_idle <= 0) {
            rc.max_idle = 64;
        }
        ark_cache_client_create(&g->redis, &rc, p);
    }
    sha1_hex(g->admit_sha, admit_lua);
    sha1_hex(g->settle_sha, settle_lua);
    *pg = g;
    return APR_SUCCESS;
}

void ark_govern_subject(ark_gov_subject_t *s, const ark_govern_conf_t *c,
                        const ark_keyring_t *ring, const ark_key_t *key)
{
    const ark_tenant_t *t;

    memset(s, 0, sizeof(*s));
    s->key = key->name;
    s->tenant = key->tenant ? key->tenant : key->name;
    s->key_limits = key->limits;
#define DEF(f) if (!s->key_limits.f) s->key_limits.f = c->defaults.f
    DEF(rpm);
    DEF(tpm);
    DEF(concurrency);
    DEF(budget_day);
    DEF(budget_month);
#undef DEF
    t = ring ? ark_keys_tenant(ring, s->tenant) : NULL;
    if (t) {
        s->tenant_limits = t->limits;
    }
    s->provider_limits = key->provider_limits;
}

static int limits_any(const ark_limits_t *l)
{
    return l->rpm || l->tpm || l->concurrency || l->budget_day
           || l->budget_month;
}

int ark_govern_subject_limited(const ark_gov_subject_t *s)
{
    return limits_any(&s->key_limits) || limits_any(&s->tenant_limits)
           || (s->provider_limits && s->provider_limits->nelts > 0);
}

/* ------------------------------------------------------ the checks */

typedef enum { W_RPM, W_TPM, W_CONC, W_BUDGET, W_PROVIDER } what_t;

typedef struct check_t {
    char kind;                 /* g q c b */
    what_t what;
    char scope;
    ark_period_t period;       /* budgets */
    const char *id;            /* without the prefix */
    const char *provider;      /* W_PROVIDER */
    apr_int64_t limit, cost;
    apr_int64_t a1, a2;        /* results */
    int have;                  /* results present */
} check_t;

static check_t *add_check(apr_array_header_t *a, char kind, what_t what,
                          char scope, const char *id, apr_int64_t limit,
                          apr_int64_t cost)
{
    check_t *c = apr_array_push(a);

    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->what = what;
    c->scope = scope;
    c->id = id;
    c->limit = limit;
    c->cost = cost;
    return c;
}

static void add_scope_checks(apr_array_header_t *a, char scope,
                             const char *name, const ark_limits_t *l,
                             apr_int64_t estimate, apr_time_t now,
                             apr_pool_t *p)
{
    check_t *c;

    if (!name) {
        return;
    }
    if (l->budget_day) {
        c = add_check(a, 'b', W_BUDGET, scope,
                      ark_rkey_usage(p, "", scope, name, ARK_PERIOD_DAY, now),
                      l->budget_day, 0);
        c->period = ARK_PERIOD_DAY;
    }
    if (l->budget_month) {
        c = add_check(a, 'b', W_BUDGET, scope,
                      ark_rkey_usage(p, "", scope, name, ARK_PERIOD_MONTH,
                                     now), l->budget_month, 0);
        c->period = ARK_PERIOD_MONTH;
    }
    if (l->rpm) {
        add_check(a, 'g', W_RPM, scope, ark_rkey(p, "", scope, name, "rpm"),
                  l->rpm, 1);
    }
    if (l->tpm) {
        add_check(a, 'g', W_TPM, scope, ark_rkey(p, "", scope, name, "tpm"),
                  l->tpm, estimate);
    }
    if (l->concurrency) {
        add_check(a, 'c', W_CONC, scope,
                  ark_rkey(p, "", scope, name, "inflight"), l->concurrency,
                  1);
    }
}

static apr_array_header_t *build_checks(const ark_gov_subject_t *s,
                                        apr_int64_t estimate, apr_time_t now,
                                        apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 12, sizeof(check_t));
    int i;

    add_scope_checks(a, ARK_SCOPE_KEY, s->key, &s->key_limits, estimate, now,
                     p);
    add_scope_checks(a, ARK_SCOPE_TENANT, s->tenant, &s->tenant_limits,
                     estimate, now, p);
    for (i = 0; s->provider_limits && i < s->provider_limits->nelts; i++) {
        const ark_provider_limit_t *pl =
            &APR_ARRAY_IDX(s->provider_limits, i, ark_provider_limit_t);
        check_t *c;

        if (pl->rpm) {
            c = add_check(a, 'q', W_PROVIDER, ARK_SCOPE_KEY,
                          ark_rkey(p, "", ARK_SCOPE_KEY, s->key,
                                   apr_pstrcat(p, "p:", pl->provider, ":rpm",
                                               NULL)), pl->rpm, 1);
            c->provider = pl->provider;
        }
        if (pl->tpm) {
            c = add_check(a, 'q', W_PROVIDER, ARK_SCOPE_KEY,
                          ark_rkey(p, "", ARK_SCOPE_KEY, s->key,
                                   apr_pstrcat(p, "p:", pl->provider, ":tpm",
                                               NULL)), pl->tpm, 1);
            c->provider = pl->provider;
        }
    }
    return a;
}

/* ------------------------------------------------------ Redis calls */

/* EVALSHA, or EVAL when the script is not loaded yet. args are the
 * ARGV (no keys). Returns the reply or NULL (failure recorded). With
 * short non-NULL (a settlement) and wait-replicas set, the script is
 * followed by WAIT: *short_ack is 1 when fewer replicas than asked
 * confirmed it (it is then applied on the master but could be lost in a
 * failover). */
static redisReply *run_script(ark_govern_t *g, const char *sha,
                              const char *script, apr_array_header_t *args,
                              int *maybe, int *short_ack, apr_pool_t *p)
{
    int acked = -1;
    int argc = args->nelts + 3, i, unsent = 0, pass;
    const char **argv = apr_palloc(p, sizeof(char *) * (apr_size_t)argc);
    size_t *lens = apr_palloc(p, sizeof(size_t) * (apr_size_t)argc);
    const char *detail = NULL;
    redisReply *r = NULL;

    argv[2] = "0";
    lens[2] = 1;
    for (i = 0; i < args->nelts; i++) {
        argv[i + 3] = APR_ARRAY_IDX(args, i, const char *);
        lens[i + 3] = strlen(argv[i + 3]);
    }
    for (pass = 0; pass < 2; pass++) {
        argv[0] = pass ? "EVAL" : "EVALSHA";
        lens[0] = strlen(argv[0]);
        argv[1] = pass ? script : sha;
        lens[1] = strlen(argv[1]);
        if (short_ack && g->conf.redis.wait_replicas > 0) {
            r = ark_cache_client_command_wait(g->redis, argc, argv, lens,
                                              &unsent, &acked, &detail, p);
        }
        else {
            r = ark_cache_client_command(g->redis, argc, argv, lens,
                                         &unsent, &detail, p);
        }
        if (!r) {
            break;
        }
        if (r->type == REDIS_REPLY_ERROR && !pass
            && !strncmp(r->str, "NOSCRIPT", 8)) {
            freeReplyObject(r);
            r = NULL;
            continue;
        }
        break;
    }
    if (r && r->type == REDIS_REPLY_ERROR) {
        detail = apr_psprintf(p, "Redis refused the governance script: "
                              "%.200s", r->str);
        freeReplyObject(r);
        r = NULL;
    }
    if (maybe) {
        *maybe = !r && !unsent;
    }
    if (!r) {
        if (detail && strcmp(detail, "breaker open")) {
            apr_cpystrn(g->last_error, detail, sizeof(g->last_error));
        }
        atomic_store(&g->shm->redis_up, 0);
        return NULL;
    }
    atomic_store(&g->shm->redis_up, 1);
    if (short_ack) {
        *short_ack = g->conf.redis.wait_replicas > 0
                     && acked < g->conf.redis.wait_replicas;
        if (*short_ack) {
            atomic_fetch_add(&g->shm->wait_short, 1);
        }
    }
    return r;
}

static const char *i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

#define PUSH(a, s) (*(const char **)apr_array_push(a) = (s))

/* ---------------------------------------------------- local fallback */

static apr_int64_t local_limit(const ark_govern_t *g, apr_int64_t limit)
{
    apr_int64_t l = limit / g->conf.nodes;

    return l > 0 ? l : 1;
}

/* GCRA take on a slot's v[0]. */
static void local_take(gov_slot_t *s, apr_time_t now, apr_int64_t limit,
                       apr_int64_t cost, ark_gcra_result_t *res)
{
    for (;;) {
        apr_int64_t old = atomic_load(&s->v[0]), tat = old;

        ark_gcra_take(&tat, now, limit, ARK_GOVERN_PERIOD, cost, res);
        if (!res->allowed
            || atomic_compare_exchange_weak(&s->v[0], &old, tat)) {
            return;
        }
    }
}

static void local_adjust(gov_slot_t *s, apr_time_t now, apr_int64_t limit,
                         apr_int64_t delta)
{
    for (;;) {
        apr_int64_t old = atomic_load(&s->v[0]), tat = old;

        ark_gcra_adjust(&tat, now, limit, ARK_GOVERN_PERIOD, delta);
        if (atomic_compare_exchange_weak(&s->v[0], &old, tat)) {
            return;
        }
    }
}

/* Undoes the takes of checks [0, upto) after a later check failed. */
static void local_undo(ark_govern_t *g, apr_array_header_t *checks, int upto,
                       apr_time_t now)
{
    int i;

    for (i = 0; i < upto; i++) {
        check_t *c = &APR_ARRAY_IDX(checks, i, check_t);
        gov_slot_t *s = slot_find(g->shm, c->id, 0);

        if (!s) {
            continue;
        }
        if (c->kind == 'g') {
            local_adjust(s, now, c->limit, -c->cost);
        }
        else if (c->kind == 'c') {
            atomic_fetch_sub(&s->v[0], 1);
        }
    }
}

/* Decides with node-local counters; returns the 1-based failed check or
 * 0, with retry in *retry. */
static int local_admit(ark_govern_t *g, apr_array_header_t *checks,
                       int *unavailable, apr_interval_time_t *retry)
{
    apr_time_t now = apr_time_now();
    int i;

    *unavailable = 0;
    *retry = 0;
    for (i = 0; i < checks->nelts; i++) {
        check_t *c = &APR_ARRAY_IDX(checks, i, check_t);
        apr_int64_t limit;
        gov_slot_t *s;
        ark_gcra_result_t res;

        if (c->kind != 'b') {
            c->limit = local_limit(g, c->limit);  /* local_undo uses it */
        }
        limit = c->limit;

        if (c->kind == 'b') {
            if (!g->redis) {
                /* node-local only: the table is the record of spend */
                s = slot_find(g->shm, c->id, 0);
                c->a1 = s ? atomic_load(&s->v[F_SPEND]) : 0;
                c->have = 1;
                if (c->a1 >= c->limit) {
                    local_undo(g, checks, i, now);
                    return i + 1;
                }
                continue;
            }
            if (g->conf.budget_fail_closed) {
                *unavailable = 1;
                local_undo(g, checks, i, now);
                return i + 1;
            }
            continue;
        }
        s = slot_find(g->shm, c->id, 1);
        if (!s) {
            continue;                  /* table full: fail open */
        }
        c->have = 1;
        if (c->kind == 'q') {
            apr_int64_t tat = atomic_load(&s->v[0]);
            apr_int64_t t = ark_gcra_interval(limit, ARK_GOVERN_PERIOD);

            c->a1 = (tat > now ? tat : now) + t - now > ARK_GOVERN_PERIOD;
            continue;
        }
        if (c->kind == 'c') {
            if (atomic_fetch_add(&s->v[0], 1) + 1 > limit) {
                atomic_fetch_sub(&s->v[0], 1);
                c->a1 = limit;
                *retry = apr_time_from_sec(1);
                local_undo(g, checks, i, now);
                return i + 1;
            }
            c->a1 = atomic_load(&s->v[0]);
            continue;
        }
        local_take(s, now, limit, c->cost, &res);
        c->a1 = res.remaining;
        c->a2 = res.reset;
        if (!res.allowed) {
            *retry = res.retry_after;
            local_undo(g, checks, i, now);
            return i + 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------- admission */

static void ticket_headers(ark_gov_ticket_t *t, const check_t *c)
{
    if (!c->have || c->kind != 'g') {
        return;
    }
    if (c->what == W_RPM && (!t->req_limit || c->a1 < t->req_remaining)) {
        t->req_limit = c->limit;
        t->req_remaining = c->a1 < 0 ? 0 : c->a1;
        t->req_reset = c->a2;
    }
    if (c->what == W_TPM && (!t->tok_limit || c->a1 < t->tok_remaining)) {
        t->tok_limit = c->limit;
        t->tok_remaining = c->a1 < 0 ? 0 : c->a1;
        t->tok_reset = c->a2;
    }
}

static ark_gov_verdict_t refuse(ark_govern_t *g, ark_gov_ticket_t *t,
                                const check_t *c, apr_interval_time_t retry,
                                apr_time_t now)
{
    ark_gov_verdict_t v;

    switch (c->what) {
    case W_RPM:
        v = ARK_GOV_REQUESTS;
        break;
    case W_TPM:
        v = retry < 0 ? ARK_GOV_TOO_LARGE : ARK_GOV_TOKENS;
        break;
    case W_CONC:
        v = ARK_GOV_CONCURRENCY;
        break;
    default:
        v = ARK_GOV_BUDGET;
        retry = ark_period_left(c->period, now);
        t->period = c->period;
        break;
    }
    t->verdict = v;
    t->scope = c->scope;
    t->retry_after = retry;
    atomic_fetch_add(&g->shm->refused[v], 1);
    return v;
}

static void flush_buffered(ark_govern_t *g, apr_pool_t *p);

ark_gov_verdict_t ark_govern_admit(ark_govern_t *g,
                                   const ark_gov_subject_t *s,
                                   apr_int64_t estimate,
                                   ark_gov_ticket_t *t, apr_pool_t *p)
{
    apr_array_header_t *checks, *args;
    apr_time_t now = apr_time_now();
    redisReply *r = NULL;
    int i, failed = 0;
    apr_interval_time_t retry = 0;

    memset(t, 0, sizeof(*t));
    t->subject = *s;
    t->verdict = ARK_GOV_OK;
    t->reserved = s->key_limits.tpm || s->tenant_limits.tpm ? estimate : 0;
    checks = build_checks(s, estimate, now, p);
    if (checks->nelts == 0) {
        t->admitted = 1;
        return ARK_GOV_OK;
    }
    t->lease = apr_psprintf(p, "%ld:%" APR_UINT64_T_FMT ":%" APR_TIME_T_FMT,
                            (long)getpid(),
                            atomic_fetch_add(&g->lease_seq, 1), now);
    if (g->redis) {
        args = apr_array_make(p, 4 + checks->nelts * 4, sizeof(char *));
        PUSH(args, i64(p, ARK_GOVERN_PERIOD));
        PUSH(args, i64(p, g->conf.lease));
        PUSH(args, t->lease);
        PUSH(args, apr_itoa(p, checks->nelts));
        for (i = 0; i < checks->nelts; i++) {
            check_t *c = &APR_ARRAY_IDX(checks, i, check_t);

            PUSH(args, apr_psprintf(p, "%c", c->kind));
            PUSH(args, apr_pstrcat(p, g->conf.prefix, c->id, NULL));
            PUSH(args, i64(p, c->limit));
            PUSH(args, i64(p, c->cost));
        }
        r = run_script(g, g->admit_sha, admit_lua, args, NULL, NULL, p);
        if (r && (r->type != REDIS_REPLY_ARRAY || r->elements < 3)) {
            freeReplyObject(r);
            r = NULL;
            apr_cpystrn(g->last_error, "Redis sent a malformed admission "
                        "reply", sizeof(g->last_error));
            atomic_store(&g->shm->redis_up, 0);
        }
    }
    if (r) {
        failed = (int)r->element[0]->integer;
        retry = (apr_interval_time_t)r->element[1]->integer;
        for (i = 0; i < checks->nelts && 3 + 2 * (apr_size_t)i + 1
                                         < r->elements; i++) {
            check_t *c = &APR_ARRAY_IDX(checks, i, check_t);

            c->a1 = r->element[3 + 2 * i]->integer;
            c->a2 = r->element[4 + 2 * i]->integer;
            c->have = 1;
        }
        freeReplyObject(r);
    }
    else {
        int unavailable;

        t->local = 1;
        atomic_fetch_add(&g->shm->fallbacks, 1);
        failed = local_admit(g, checks, &unavailable, &retry);
        if (failed && unavailable) {
            t->verdict = ARK_GOV_UNAVAILABLE;
            t->scope = APR_ARRAY_IDX(checks, failed - 1, check_t).scope;
            t->retry_after = apr_time_from_sec(1);
            atomic_fetch_add(&g->shm->refused[ARK_GOV_UNAVAILABLE], 1);
            return t->verdict;
        }
    }
    t->exhausted = apr_array_make(p, 2, sizeof(char *));
    for (i = 0; i < checks->nelts; i++) {
        check_t *c = &APR_ARRAY_IDX(checks, i, check_t);

        ticket_headers(t, c);
        if (c->kind == 'q' && c->have && c->a1) {
            PUSH(t->exhausted, c->provider);
        }
        if (c->kind == 'b' && c->have && c->limit > 0) {
            double ratio = (double)c->a1 / (double)c->limit;

            if (ratio > t->budget_ratio) {
                t->budget_ratio = ratio;
            }
        }
    }
    if (failed > 0 && failed <= checks->nelts) {
        return refuse(g, t, &APR_ARRAY_IDX(checks, failed - 1, check_t),
                      retry, now);
    }
    t->admitted = 1;
    if (!t->local && atomic_load(&g->shm->dirty)) {
        flush_buffered(g, p);
    }
    return ARK_GOV_OK;
}

/* ---------------------------------------------------------- settling */

/* Adds the h/e ops of one usage hash. */
static void usage_ops(apr_array_header_t *ops, const char *prefix,
                      const char *id, ark_period_t period,
                      const apr_int64_t *v, apr_pool_t *p)
{
    const char *key = apr_pstrcat(p, prefix, id, NULL);
    int f, any = 0;

    /* every field, zeros included, so readers always find all seven */
    for (f = 0; f < NFIELDS; f++) {
        PUSH(ops, "h");
        PUSH(ops, key);
        PUSH(ops, usage_fields[f]);
        PUSH(ops, i64(p, v[f]));
        any |= v[f] != 0;
    }
    if (any) {
        PUSH(ops, "e");
        PUSH(ops, key);
        PUSH(ops, apr_ltoa(p, ark_period_keep_sec(period)));
    }
}

/* Each request's usage goes to four hashes (key and tenant, day and
 * month); the buffered totals count it once, through the key's day. */
static int counts_buffered(const char *id)
{
    const char *u = strstr(id, ":u:");

    return id[0] == ARK_SCOPE_KEY && u && strlen(u + 3) == 8;
}

static void buffered_add(ark_govern_t *g, const char *hash,
                         const apr_int64_t *v, int sign)
{
    if (counts_buffered(hash)) {
        atomic_fetch_add(&g->shm->buffered_nano, sign * v[F_SPEND]);
        atomic_fetch_add(&g->shm->buffered_tokens, sign * (v[1] + v[2]));
    }
}

/* Keeps usage in the shared table: for Redis later (buffered), or as
 * the node's only record when no Redis is configured. */
static void buffer_usage(ark_govern_t *g, const char *id,
                         const apr_int64_t *v, int buffered)
{
    gov_slot_t *s = slot_find(g->shm, id, 1);
    int f;

    if (!s) {
        return;                        /* counted in table_full */
    }
    for (f = 0; f < NFIELDS; f++) {
        if (v[f]) {
            atomic_fetch_add(&s->v[f], v[f]);
        }
    }
    if (buffered) {
        buffered_add(g, id, v, 1);
        atomic_store(&g->shm->dirty, 1);
    }
}

/* A fresh done-key id, unique across nodes and processes. With a trace
 * id (32 hex digits, as ark_trace makes them) the id is
 * "done:<trace>:<16 random hex>", so a request's settlement can be found
 * with SCAN MATCH <prefix>done:<trace>:* (a client may reuse a trace id
 * for several requests: the random part keeps them apart); without one,
 * "done:<16 random hex>:<pid>:<sequence>". Both fit gov_pending_t.done. */
const char *ark_govern_done_id(ark_govern_t *g, const char *trace,
                               apr_pool_t *p)
{
    unsigned char rnd[8];
    char hex[17];
    int i;

    ark_trace_random(rnd, sizeof(rnd));
    for (i = 0; i < 8; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    }
    if (trace && strlen(trace) == 32
        && strspn(trace, "0123456789abcdef") == 32) {
        return apr_psprintf(p, "done:%s:%s", trace, hex);
    }
    return apr_psprintf(p, "done:%s:%ld:%" APR_UINT64_T_FMT, hex,
                        (long)getpid(), atomic_fetch_add(&g->lease_seq, 1));
}


/* Keeps a maybe-applied settlement's usage for replay; 0 when the ring
 * is full. */
static int pending_push(ark_govern_t *g, const char *done, int nh,
                        const char *const *hashes, const apr_int64_t *v)
{
    gov_pending_t *ring = pending_ring(g->shm);
    int i, h;

    for (i = 0; i < PENDING_MAX; i++) {
        apr_uint32_t zero = 0;

        if (!atomic_compare_exchange_strong(&ring[i].state, &zero, 1)) {
            continue;
        }
        apr_cpystrn(ring[i].done, done, sizeof(ring[i].done));
        ring[i].nh = nh;
        for (h = 0; h < nh; h++) {
            apr_cpystrn(ring[i].hash[h], hashes[h], SLOT_ID_MAX);
            buffered_add(g, hashes[h], v, 1);
        }
        memcpy(ring[i].v, v, sizeof(ring[i].v));
        atomic_fetch_add(&g->shm->npending, 1);
        atomic_store(&ring[i].state, 2);
        atomic_store(&g->shm->dirty, 1);
        return 1;
    }
    return 0;
}

/* Replays one pending record under its done-key; 1 when Redis has it
 * now (applied by this call or an earlier one). */
static int pending_replay(ark_govern_t *g, gov_pending_t *rec,
                          apr_pool_t *p)
{
    apr_array_header_t *ops = apr_array_make(p, 64, sizeof(char *));
    redisReply *r;
    int h, short_ack = 0;

    PUSH(ops, i64(p, ARK_GOVERN_PERIOD));
    PUSH(ops, apr_pstrcat(p, g->conf.prefix, rec->done, NULL));
    PUSH(ops, i64(p, apr_time_sec(g->conf.done_ttl)));
    for (h = 0; h < rec->nh; h++) {
        const char *u = strstr(rec->hash[h], ":u:");

        usage_ops(ops, g->conf.prefix, rec->hash[h],
                  u && strlen(u + 3) == 6 ? ARK_PERIOD_MONTH
                                          : ARK_PERIOD_DAY,
                  rec->v, p);
    }
    r = run_script(g, g->settle_sha, settle_lua, ops, NULL, &short_ack, p);
    if (!r) {
        return 0;
    }
    freeReplyObject(r);
    if (short_ack) {
        return 0;                      /* not on enough replicas yet */
    }
    for (h = 0; h < rec->nh; h++) {
        buffered_add(g, rec->hash[h], rec->v, -1);
    }
    return 1;
}

/* Replays every ready pending record, until one fails; 1 when none
 * failed. */
static int replay_ready(ark_govern_t *g, apr_pool_t *sp)
{
    gov_pending_t *ring = pending_ring(g->shm);
    int i, ok = 1;

    for (i = 0; ok && i < PENDING_MAX; i++) {
        apr_uint32_t ready = 2;

        if (!atomic_compare_exchange_strong(&ring[i].state, &ready, 3)) {
            continue;
        }
        ok = pending_replay(g, &ring[i], sp);
        if (ok) {
            atomic_fetch_sub(&g->shm->npending, 1);
            atomic_fetch_add(&g->shm->flushes, 1);
        }
        atomic_store(&ring[i].state, ok ? 0 : 2);
        apr_pool_clear(sp);
    }
    return ok;
}

/* Writes what waits for Redis: first the maybe-applied settlements
 * (idempotent replays), then the usage merged in the table while Redis
 * was unreachable, each slot turned into a pending record with a new
 * done-key before it is sent, so that no write is ever applied twice. */
static void flush_buffered(ark_govern_t *g, apr_pool_t *p)
{
    int zero = 0, ok = 1;
    apr_uint32_t k;
    apr_pool_t *sp;

    if (!atomic_compare_exchange_strong(&g->shm->flushing, &zero, 1)) {
        return;
    }
    atomic_store(&g->shm->dirty, 0);
    apr_pool_create(&sp, p);
    ok = replay_ready(g, sp);
    for (k = 0; ok && k <= g->shm->mask; k++) {
        gov_slot_t *s = &g->shm->slots[k];
        apr_int64_t v[NFIELDS];
        const char *u, *hash, *done;
        int f, any = 0;

        if (atomic_load(&s->state) != 2 || s->id[1] != ':'
            || (s->id[0] != ARK_SCOPE_KEY && s->id[0] != ARK_SCOPE_TENANT)
            || !(u = strstr(s->id, ":u:"))) {
            continue;
        }
        for (f = 0; f < NFIELDS; f++) {
            v[f] = atomic_exchange(&s->v[f], 0);
            any |= v[f] != 0;
        }
        if (!any) {
            continue;
        }
        hash = s->id;
        done = ark_govern_done_id(g, NULL, sp);
        buffered_add(g, hash, v, -1);  /* moves to the pending record */
        if (!pending_push(g, done, 1, &hash, v)) {
            for (f = 0; f < NFIELDS; f++) {
                atomic_fetch_add(&s->v[f], v[f]);
            }
            buffered_add(g, hash, v, 1);
            atomic_store(&g->shm->dirty, 1);
            break;
        }
        apr_pool_clear(sp);
    }
    if (ok && atomic_load(&g->shm->npending) > 0) {
        ok = replay_ready(g, sp);      /* the records just made */
    }
    if (!ok || atomic_load(&g->shm->npending) > 0) {
        atomic_store(&g->shm->dirty, 1);
    }
    apr_pool_destroy(sp);
    atomic_store(&g->shm->flushing, 0);
}

static void settle_local(ark_govern_t *g, ark_gov_ticket_t *t,
                         apr_int64_t used, const char *provider,
                         apr_pool_t *p)
{
    const ark_gov_subject_t *s = &t->subject;
    apr_time_t now = apr_time_now();
    gov_slot_t *sl;
    int i;

#define ADJ(scope, name, lim, what, delta)                                  \
    if ((lim) && (name)                                                     \
        && (sl = slot_find(g->shm, ark_rkey(p, "", scope, name, what), 0))) \
        local_adjust(sl, now, local_limit(g, lim), delta)
    ADJ(ARK_SCOPE_KEY, s->key, s->key_limits.tpm, "tpm", used - t->reserved);
    ADJ(ARK_SCOPE_TENANT, s->tenant, s->tenant_limits.tpm, "tpm",
        used - t->reserved);
#undef ADJ
    if (s->key_limits.concurrency
        && (sl = slot_find(g->shm, ark_rkey(p, "", ARK_SCOPE_KEY, s->key,
                                            "inflight"), 0))) {
        atomic_fetch_sub(&sl->v[0], 1);
    }
    if (s->tenant_limits.concurrency
        && (sl = slot_find(g->shm, ark_rkey(p, "", ARK_SCOPE_TENANT,
                                            s->tenant, "inflight"), 0))) {
        atomic_fetch_sub(&sl->v[0], 1);
    }
    for (i = 0; provider && s->provider_limits
                && i < s->provider_limits->nelts; i++) {
        const ark_provider_limit_t *pl =
            &APR_ARRAY_IDX(s->provider_limits, i, ark_provider_limit_t);
        const char *base = apr_pstrcat(p, "p:", pl->provider, NULL);

        if (strcmp(pl->provider, provider)) {
            continue;
        }
        if (pl->rpm && (sl = slot_find(g->shm, ark_rkey(p, "", ARK_SCOPE_KEY,
                          s->key, apr_pstrcat(p, base, ":rpm", NULL)), 1))) {
            local_adjust(sl, now, local_limit(g, pl->rpm), 1);
        }
        if (pl->tpm && used > 0
            && (sl = slot_find(g->shm, ark_rkey(p, "", ARK_SCOPE_KEY, s->key,
                               apr_pstrcat(p, base, ":tpm", NULL)), 1))) {
            local_adjust(sl, now, local_limit(g, pl->tpm), used);
        }
    }
}

/* The limit ops of a Redis settlement. */
static void settle_ops(ark_govern_t *g, ark_gov_ticket_t *t,
                       apr_int64_t used, const char *provider,
                       apr_array_header_t *ops, apr_pool_t *p)
{
    const ark_gov_subject_t *s = &t->subject;
    const char *pre = g->conf.prefix;
    int i;

#define OP4(a, b, c, d) (PUSH(ops, a), PUSH(ops, b), PUSH(ops, c), PUSH(ops, d))
    if (s->key_limits.tpm && used != t->reserved) {
        OP4("a", ark_rkey(p, pre, ARK_SCOPE_KEY, s->key, "tpm"),
            i64(p, s->key_limits.tpm), i64(p, used - t->reserved));
    }
    if (s->tenant_limits.tpm && used != t->reserved) {
        OP4("a", ark_rkey(p, pre, ARK_SCOPE_TENANT, s->tenant, "tpm"),
            i64(p, s->tenant_limits.tpm), i64(p, used - t->reserved));
    }
    if (s->key_limits.concurrency) {
        PUSH(ops, "z");
        PUSH(ops, ark_rkey(p, pre, ARK_SCOPE_KEY, s->key, "inflight"));
        PUSH(ops, t->lease);
    }
    if (s->tenant_limits.concurrency) {
        PUSH(ops, "z");
        PUSH(ops, ark_rkey(p, pre, ARK_SCOPE_TENANT, s->tenant, "inflight"));
        PUSH(ops, t->lease);
    }
    for (i = 0; provider && s->provider_limits
                && i < s->provider_limits->nelts; i++) {
        const ark_provider_limit_t *pl =
            &APR_ARRAY_IDX(s->provider_limits, i, ark_provider_limit_t);

        if (strcmp(pl->provider, provider)) {
            continue;
        }
        if (pl->rpm) {
            OP4("a", ark_rkey(p, pre, ARK_SCOPE_KEY, s->key,
                              apr_pstrcat(p, "p:", provider, ":rpm", NULL)),
                i64(p, pl->rpm), "1");
        }
        if (pl->tpm && used > 0) {
            OP4("a", ark_rkey(p, pre, ARK_SCOPE_KEY, s->key,
                              apr_pstrcat(p, "p:", provider, ":tpm", NULL)),
                i64(p, pl->tpm), i64(p, used));
        }
    }
#undef OP4
}

void ark_govern_usage_values(const ark_gov_usage_t *u, apr_int64_t *v)
{
    v[0] = 1;
    v[1] = u->prompt_tokens > 0 ? u->prompt_tokens : 0;
    v[2] = u->completion_tokens > 0 ? u->completion_tokens : 0;
    v[3] = u->cached_tokens > 0 ? u->cached_tokens : 0;
    v[4] = u->spend_nano;
    v[5] = u->cache_hit ? 1 : 0;
    v[6] = u->saved_nano;
}

int ark_govern_has_redis(const ark_govern_t *g)
{
    return g && g->redis != NULL;
}

int ark_govern_replay_entry(ark_govern_t *g, const ark_journal_entry_t *e,
                            apr_pool_t *p)
{
    apr_array_header_t *ops = apr_array_make(p, 80, sizeof(char *));
    const char *names[2] = { e->key, e->tenant[0] ? e->tenant : e->key };
    const char scopes[2] = { ARK_SCOPE_KEY, ARK_SCOPE_TENANT };
    const ark_period_t periods[2] = { ARK_PERIOD_DAY, ARK_PERIOD_MONTH };
    int a, b, short_ack = 0;
    redisReply *r;

    if (!g->redis) {
        return 1;                      /* nowhere to write it */
    }
    PUSH(ops, i64(p, ARK_GOVERN_PERIOD));
    PUSH(ops, apr_pstrcat(p, g->conf.prefix, e->done, NULL));
    PUSH(ops, i64(p, apr_time_sec(g->conf.done_ttl)));
    for (a = 0; a < 2; a++) {
        for (b = 0; b < 2; b++) {
            const char *id = ark_rkey_usage(p, "", scopes[a], names[a],
                                            periods[b], e->time);

            usage_ops(ops, g->conf.prefix, id, periods[b], e->v, p);
            if (e->state == ARK_JSLOT_ESTIMATE) {
                const char *key = apr_pstrcat(p, g->conf.prefix, id, NULL);

                PUSH(ops, "h");
                PUSH(ops, key);
                PUSH(ops, ARK_UF_EST_REQUESTS);
                PUSH(ops, "1");
                PUSH(ops, "h");
                PUSH(ops, key);
                PUSH(ops, ARK_UF_EST_TOKENS);
                PUSH(ops, i64(p, e->v[1] + e->v[2]));
            }
        }
    }
    r = run_script(g, g->settle_sha, settle_lua, ops, NULL, &short_ack, p);
    if (!r) {
        return 0;
    }
    freeReplyObject(r);
    return !short_ack;
}

void ark_govern_settle(ark_govern_t *g, ark_gov_ticket_t *t,
                       const ark_gov_subject_t *s, const ark_gov_usage_t *u,
                       apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    apr_int64_t v[NFIELDS], used;
    const char *ids[4];
    ark_period_t periods[4] = { ARK_PERIOD_DAY, ARK_PERIOD_MONTH,
                                ARK_PERIOD_DAY, ARK_PERIOD_MONTH };
    apr_array_header_t *ops;
    int i, n = 0, limits, maybe = 0, short_ack = 0;
    const char *done = NULL;
    redisReply *r = NULL;

    if (t->settled) {
        return;
    }
    t->settled = 1;
    if (!t->admitted) {
        t->subject = *s;
    }
    s = &t->subject;
    ark_govern_usage_values(u, v);
    used = v[1] + v[2];
    if (s->key) {
        ids[n++] = ark_rkey_usage(p, "", ARK_SCOPE_KEY, s->key,
                                  ARK_PERIOD_DAY, now);
        ids[n++] = ark_rkey_usage(p, "", ARK_SCOPE_KEY, s->key,
                                  ARK_PERIOD_MONTH, now);
    }
    if (s->tenant) {
        ids[n] = ark_rkey_usage(p, "", ARK_SCOPE_TENANT, s->tenant,
                                ARK_PERIOD_DAY, now);
        periods[n++] = ARK_PERIOD_DAY;
        ids[n] = ark_rkey_usage(p, "", ARK_SCOPE_TENANT, s->tenant,
                                ARK_PERIOD_MONTH, now);
        periods[n++] = ARK_PERIOD_MONTH;
    }
    limits = t->admitted && !t->local;
    if (t->admitted && t->local) {
        settle_local(g, t, used, u->provider, p);
    }
    if (g->redis) {
        done = u->done_id ? u->done_id
                          : ark_govern_done_id(g, u->trace_id, p);
        ops = apr_array_make(p, 64, sizeof(char *));
        PUSH(ops, i64(p, ARK_GOVERN_PERIOD));
        PUSH(ops, apr_pstrcat(p, g->conf.prefix, done, NULL));
        PUSH(ops, i64(p, apr_time_sec(g->conf.done_ttl)));
        if (limits) {
            settle_ops(g, t, used, u->provider, ops, p);
        }
        for (i = 0; i < n; i++) {
            usage_ops(ops, g->conf.prefix, ids[i], periods[i], v, p);
        }
        if (ops->nelts > 3) {
            r = run_script(g, g->settle_sha, settle_lua, ops, &maybe,
                           &short_ack, p);
        }
        else {
            return;
        }
    }
    if (r && short_ack) {
        /* applied by the master, but fewer replicas than wait-replicas
         * confirmed it: a failover now could lose it. Keep it for replay
         * under its done-key (a no-op where it survived). Never merged
         * into the buffered usage: it is known to be applied, a new
         * done-key would count it twice. */
        freeReplyObject(r);
        if (!pending_push(g, done, n, ids, v)) {
            atomic_fetch_add(&g->shm->uncertain, 1);
        }
        return;
    }
    if (r) {
        freeReplyObject(r);
        if (atomic_load(&g->shm->dirty)) {
            flush_buffered(g, p);
        }
        return;
    }
    /* no Redis, or it failed: keep the usage for later (with Redis) or
     * for the local budget view (without) */
    if (limits) {
        /* admitted by Redis: its lease expires by itself; the token
         * reservation stays taken there (conservative) */
        settle_local(g, t, used, NULL, p);
    }
    if (!g->redis && !s->key_limits.budget_day && !s->key_limits.budget_month
        && !s->tenant_limits.budget_day && !s->tenant_limits.budget_month) {
        return;                        /* nothing will read it */
    }
    if (maybe) {
        /* sent, no answer: Redis may have applied it. Replay it later
         * under the same done-key, so it counts exactly once. */
        if (pending_push(g, done, n, ids, v)) {
            return;
        }
        atomic_fetch_add(&g->shm->uncertain, 1);
    }
    for (i = 0; i < n; i++) {
        buffer_usage(g, ids[i], v, g->redis != NULL);
    }
}

/* ------------------------------------------------------ node statistics */

void ark_govern_stat_add(ark_govern_t *g, const char *id, int field,
                         apr_int64_t n)
{
    gov_slot_t *s;

    if (!g || field < 0 || field >= ARK_STAT_FIELDS || n == 0
        || !(s = slot_find(g->shm, id, 1))) {
        return;
    }
    atomic_fetch_add(&s->v[field], n);
}

void ark_govern_stat_add_daily(ark_govern_t *g, const char *id, int field,
                               apr_int64_t n, apr_time_t now)
{
    apr_int64_t day = now / apr_time_from_sec(86400), seen;
    gov_slot_t *s;
    int f;

    if (!g || field < 0 || field >= ARK_STAT_FIELDS - 1
        || !(s = slot_find(g->shm, id, 1))) {
        return;
    }
    seen = atomic_load(&s->v[ARK_STAT_FIELDS - 1]);
    if (seen != day && atomic_compare_exchange_strong(
                           &s->v[ARK_STAT_FIELDS - 1], &seen, day)) {
        for (f = 0; f < ARK_STAT_FIELDS - 1; f++) {
            atomic_store(&s->v[f], 0);
        }
    }
    atomic_fetch_add(&s->v[field], n);
}

void ark_govern_stat_each(ark_govern_t *g, const char *prefix,
                          ark_govern_stat_fn *fn, void *ctx)
{
    apr_size_t plen = strlen(prefix);
    apr_uint32_t i;

    for (i = 0; g && i <= g->shm->mask; i++) {
        gov_slot_t *s = &g->shm->slots[i];
        apr_int64_t v[ARK_STAT_FIELDS];
        int f;

        if (atomic_load(&s->state) != 2 || strncmp(s->id, prefix, plen)) {
            continue;
        }
        for (f = 0; f < ARK_STAT_FIELDS; f++) {
            v[f] = atomic_load(&s->v[f]);
        }
        fn(ctx, s->id + plen, v);
    }
}

/* ------------------------------------------------------------- status */

void ark_govern_stats(ark_govern_t *g, ark_gov_stats_t *out)
{
    int i;

    memset(out, 0, sizeof(*out));
    out->redis_configured = g->redis != NULL;
    out->redis_up = g->redis ? atomic_load(&g->shm->redis_up) : 0;
    out->buffered_nano = atomic_load(&g->shm->buffered_nano);
    out->buffered_tokens = atomic_load(&g->shm->buffered_tokens);
    out->fallbacks = atomic_load(&g->shm->fallbacks);
    out->flushes = atomic_load(&g->shm->flushes);
    out->table_full = atomic_load(&g->shm->table_full);
    out->pending = atomic_load(&g->shm->npending);
    out->uncertain = atomic_load(&g->shm->uncertain);
    out->wait_short = atomic_load(&g->shm->wait_short);
    for (i = 0; i <= ARK_GOV_UNAVAILABLE; i++) {
        out->refused[i] = atomic_load(&g->shm->refused[i]);
    }
}

int ark_govern_should_log(ark_govern_t *g)
{
    apr_time_t now = apr_time_now(), last = atomic_load(&g->shm->last_log);

    return now - last >= ARK_GOVERN_LOG_INTERVAL
           && atomic_compare_exchange_strong(&g->shm->last_log, &last, now);
}

const char *ark_govern_last_error(ark_govern_t *g)
{
    return g->last_error[0] ? g->last_error : "unknown error";
}

const char *ark_gov_verdict_name(ark_gov_verdict_t v)
{
    static const char *const names[] = {
        "ok", "requests", "tokens", "too_large", "concurrency", "budget",
        "unavailable"
    };

    return (unsigned)v <= ARK_GOV_UNAVAILABLE ? names[v] : "unknown";
}
