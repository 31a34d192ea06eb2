"""65: governance: rate, token and concurrency limits, budgets and exact
spend, shared through one real redis-server by two httpd nodes.

Every test checks what the client saw and what the stub provider served:
the stub counts the tokens of every answer it delivered (stats "tokens",
per-record "usage"), so the spend recorded in Redis can be reconciled with
it exactly. Two nodes are two httpd instances with the same configuration
and one shared keys file; keys are written as key lines by hand
(docs/keys.md format) so that their limits are exactly what the test says.
"""
import json
import re
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, ROUND_HALF_UP

from ark_harness import (add_key_line, add_tenant_line, assert_openai_error,
                         sse_events)
from conftest import openai_provider

METRICS_LOC = """
<Location /ark/metrics>
    SetHandler ark-metrics
</Location>
"""
RESET_RE = re.compile(r"^(?:\d+ms|(?:\d+h)?(?:\d+m)?\d+s)$")
# governance warnings a test that stops Redis expects (and counts itself)
REDIS_WARN = r"(?i:ARK\d+: .*redis)"
WARN_LINE = r"\[[a-z_]*:(?:warn|error)\].*" + REDIS_WARN


# ------------------------------------------------------------- helpers

class Cluster:
    """n httpd nodes with one configuration, one keys file, one Redis."""

    def __init__(self, make_gateway, tmp_path, ark, redis=None, n=2,
                 allow=(), prefix=None, nodes_directive=True,
                 timeout="1s"):
        self.keys_file = str(tmp_path / "cluster-keys")
        self.prefix = prefix or "ark:"
        self.redis = redis
        gov = ""
        if redis is not None:
            gov += "ArkGovernRedis 127.0.0.1:%d\n" % redis.port
            # a Redis that fsyncs every write on a busy 2-core machine can
            # take more than the default 100ms; a timeout means the local
            # fallback, which is not what most tests are about
            if timeout:
                gov += "ArkGovernTimeout %s\n" % timeout
        if prefix:
            gov += "ArkGovernPrefix %s\n" % prefix
        if nodes_directive:
            gov += "ArkGovernNodes %d\n" % n
        self.nodes = [make_gateway(ark=ark + gov + METRICS_LOC, start=False,
                                   keys_file=self.keys_file,
                                   allow=list(allow))
                      for _ in range(n)]

    def key(self, name, extra="", tenant=None):
        return add_key_line(self.keys_file, name, extra, tenant=tenant)

    def tenant(self, name, limits):
        add_tenant_line(self.keys_file, name, limits)

    def start(self):
        for node in self.nodes:
            node.start()
        return self

    def usage(self, scope, name, period="day"):
        return usage(self.redis, self.prefix, scope, name, period)


def usage(redis, prefix, scope, name, period="day"):
    """Sum of the usage hashes of a key ("k") or tenant ("t") over every
    day (or month) present, so a test crossing midnight UTC still adds up."""
    width = 8 if period == "day" else 6
    total = Counter()
    for k in redis.keys("%s%s:%s:u:*" % (prefix, scope, name)):
        if re.fullmatch(r"\d{%d}" % width, k.rsplit(":", 1)[1]):
            total.update({f: int(v) for f, v in redis.hgetall(k).items()})
    return dict(total)


def body_for(text, stream=False, model="m", max_tokens=None, **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body.update(extra)
    return body


def post(gw, key, body, timeout=60):
    return gw.request("POST", "/v1/chat/completions", body, key,
                      timeout=timeout)


def reservation(body, default_out=256):
    """Tokens the gateway reserves: ceil(body bytes / 4) + max_tokens (the
    harness sends json.dumps(body))."""
    size = len(json.dumps(body).encode())
    out = body.get("max_tokens") or body.get("max_completion_tokens") \
        or default_out
    return -(-size // 4) + out


def nano(tokens, price):
    """Nano-units of tokens at price per 1M tokens, rounded to nearest."""
    return int((Decimal(tokens) * Decimal(str(price)) * 1000)
               .quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cost_of(usage_rec, price_in, price_out):
    return (nano(usage_rec["prompt_tokens"], price_in)
            + nano(usage_rec["completion_tokens"], price_out))


def wait_until(fn, timeout=10.0, interval=0.1):
    """Polls fn until it returns a true value; returns the last value."""
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(interval)


def check_rate_headers(headers, rpm=None, tpm=None):
    if rpm is not None:
        assert headers["x-ratelimit-limit-requests"] == str(rpm), headers
        assert 0 <= int(headers["x-ratelimit-remaining-requests"]) <= rpm
        assert RESET_RE.match(headers["x-ratelimit-reset-requests"]), headers
    if tpm is not None:
        assert headers["x-ratelimit-limit-tokens"] == str(tpm), headers
        assert 0 <= int(headers["x-ratelimit-remaining-tokens"]) <= tpm
        assert RESET_RE.match(headers["x-ratelimit-reset-tokens"]), headers


def check_429(status, headers, body, code, etype, retry_after=True,
              max_retry=None):
    err = assert_openai_error(status, body, 429, code)
    assert err["type"] == etype, err
    if retry_after:
        ra = headers.get("retry-after")
        assert ra is not None and ra.isdigit() and int(ra) >= 1, headers
        if max_retry is not None:
            assert int(ra) <= max_retry, (ra, max_retry)
    else:
        assert "retry-after" not in headers, headers
    return err


def stub_tokens(*stubs):
    p = c = 0
    for s in stubs:
        t = s.stats()["tokens"]
        p, c = p + t["prompt"], c + t["completion"]
    return p, c


def gov_metric(gw, name):
    for k, v in gw.metrics().items():
        if k == name or k.startswith(name + "{"):
            return v
    raise KeyError(name)


def seconds_to_utc_midnight():
    now = time.time()
    return 86400 - now % 86400


# ------------------------------------------------------------- 1. rpm

def test_65_01_rpm_shared_by_two_nodes_is_exact(make_gateway, stub,
                                                persistent_redis, tmp_path):
    cl = Cluster(make_gateway, tmp_path,
                 openai_provider(stub) + "ArkModel m stub gpt-4o-mini\n",
                 persistent_redis, prefix="gov1:")
    key = cl.key("hammer", "rpm=20 tpm=1000000")
    cl.start()
    barrier = threading.Barrier(32, timeout=30)

    def one(i):
        if i < 32:
            barrier.wait()
        gw = cl.nodes[i % 2]
        return (i % 2,) + post(gw, key, body_for("burst %d" % i))

    t0 = time.time()
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(64)))
    elapsed = time.time() - t0
    ok = [r for r in results if r[1] == 200]
    refused = [r for r in results if r[1] != 200]
    # GCRA in Redis: a full bucket admits a burst of exactly 20, then one
    # every 3 s
    assert 20 <= len(ok) <= 20 + int(elapsed / 3.0), (len(ok), elapsed)
    assert len(stub.requests()) == len(ok)
    for node, st, h, body in ok:
        check_rate_headers(h, rpm=20, tpm=1000000)
    if elapsed < 3.0:
        # atomic across nodes: each admission saw a distinct remaining count
        remaining = sorted(int(h["x-ratelimit-remaining-requests"])
                           for _, _, h, _ in ok)
        assert remaining == list(range(20)), remaining
    for node, st, h, body in refused:
        check_429(st, h, body, "rate_limit_exceeded", "requests",
                  max_retry=60)
        check_rate_headers(h, rpm=20, tpm=1000000)
        assert h["x-ratelimit-remaining-requests"] == "0", h
    # both nodes took part in the burst
    assert {node for node, *_ in results} == {0, 1}
    # the bucket is a string holding the TAT in microseconds: about one
    # period (20 x 3 s) ahead of the burst's start
    tat = int(persistent_redis.command("GET", "gov1:k:hammer:rpm"))
    assert abs(tat / 1e6 - (t0 + 60)) < 10 + elapsed, (tat, t0)
    assert persistent_redis.command("TYPE", "gov1:k:hammer:rpm") == "string"
    # (the tpm bucket is full again once the refunds are in: it may expire)
    assert persistent_redis.command("TYPE", "gov1:k:hammer:tpm") in \
        ("string", "none")
    # the usage hash counts the admitted requests only
    assert wait_until(lambda: cl.usage("k", "hammer").get("requests")
                      == len(ok), 5), cl.usage("k", "hammer")


# ------------------------------------------------------------- 2. tpm

def test_65_02_tpm_streams_overshoot_is_bounded(make_gateway, stub,
                                                persistent_redis, tmp_path):
    T, clients = 800, 6
    cl = Cluster(make_gateway, tmp_path,
                 openai_provider(stub) + "ArkModel m stub gpt-4o-mini\n",
                 persistent_redis)
    key = cl.key("streamer", "tpm=%d" % T)
    cl.start()
    stub.config(chunk_delay_ms=20)
    # 40 two-letter words: the gateway reserves fewer tokens than the stub
    # serves (prompt 40 + completion 42), so settlement pushes usage past
    # the reservation and the limit can really be overshot
    words = " ".join("ab" for _ in range(40))
    body = body_for(words, stream=True, max_tokens=8)
    r = reservation(body)
    actual = 40 + 42
    assert actual > r
    results, lock = [], threading.Lock()

    def client(i):
        gw = cl.nodes[i % 2]
        for _ in range(60):
            st, h, raw = post(gw, key, body)
            with lock:
                results.append((st, h, raw))
            if st != 200:
                return

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(i,))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.time() - t0
    ok = [x for x in results if x[0] == 200]
    refused = [x for x in results if x[0] != 200]
    assert len(refused) == clients, [x[0] for x in refused]
    for st, h, raw in refused:
        check_429(st, h, raw, "rate_limit_exceeded", "tokens", max_retry=60)
    for st, h, raw in ok:
        assert sse_events(raw)[-1] == "[DONE]"
        check_rate_headers(h, tpm=T)
    p, c = stub_tokens(stub)
    served = p + c
    assert served == len(ok) * actual
    # streams asked the upstream for usage
    assert all(rec["body"]["stream_options"] == {"include_usage": True}
               for rec in stub.requests())
    refill = T * elapsed / 60
    bound = T + refill + clients * (actual - r)
    print("\ntpm %d: served %d tokens in %d requests (reservation %d, "
          "actual %d), overshoot %d, bound %d, %.1fs"
          % (T, served, len(ok), r, actual, served - T, bound, elapsed))
    assert served <= bound
    # not refused too early either: the last refusal saw usage + r > T
    assert served >= T - r - refill
    # Redis holds what the stub served
    want = {"prompt_tokens": p, "completion_tokens": c}
    assert wait_until(lambda: {f: cl.usage("k", "streamer").get(f)
                               for f in want} == want, 5), \
        (cl.usage("k", "streamer"), want)
    # a request whose reservation alone exceeds the limit: no Retry-After
    big = body_for("too big", max_tokens=T + 1)
    st, h, raw = post(cl.nodes[0], key, big)
    check_429(st, h, raw, "rate_limit_exceeded", "tokens", retry_after=False)
    assert stub.stats()["requests"] == len(ok)


# ----------------------------------------------------- 3. concurrency

def test_65_03_concurrency_cap_across_nodes(make_gateway, stub,
                                            persistent_redis, tmp_path):
    cl = Cluster(make_gateway, tmp_path,
                 openai_provider(stub) + "ArkModel m stub gpt-4o-mini\n",
                 persistent_redis)
    key = cl.key("parallel", "concurrency=3")
    cl.start()
    stub.config(chunk_delay_ms=200)
    barrier = threading.Barrier(10, timeout=30)
    sent = [None] * 10

    def one(i):
        barrier.wait()
        sent[i] = time.time()
        return post(cl.nodes[i % 2], key,
                    body_for("one two three four five six seven eight nine "
                             "ten", stream=True))

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    for st, h, body in refused:
        check_429(st, h, body, "rate_limit_exceeded", "concurrency")
        assert h["retry-after"] == "1", h
    assert refused, "no request was refused"
    recs = stub.requests()
    assert len(recs) == len(ok)
    events = sorted([(r["t_start"], 1) for r in recs]
                    + [(r["t_end"], -1) for r in recs])
    overlap = peak = 0
    for _, delta in events:
        overlap += delta
        peak = max(peak, overlap)
    print("\nconcurrency=3: %d admitted, %d refused, peak overlap at the "
          "stub %d" % (len(ok), len(refused), peak))
    assert peak <= 3, recs
    # all ten were sent while the first streams (2.4 s) still ran: exactly
    # three admitted
    if max(sent) < min(r["t_end"] for r in recs):
        assert len(ok) == 3, [r[0] for r in results]
    # the leases were released: new requests get in on both nodes
    for i in range(4):
        st, _, body = post(cl.nodes[i % 2], key, body_for("again %d" % i))
        assert st == 200, body
    assert wait_until(lambda: persistent_redis.command(
        "ZCARD", "ark:k:parallel:inflight") == 0, 5)


# ------------------------------------------------------------- 4. budgets

def test_65_04_daily_budget_of_a_key_and_monthly_of_a_tenant(
        make_gateway, stub, persistent_redis, tmp_path):
    # 1000/2000 per 1M tokens: 1e6 nano per prompt token, 2e6 per
    # completion token; "hello budget" is 2 + 4 tokens = 10,000,000 nano
    cl = Cluster(make_gateway, tmp_path,
                 openai_provider(stub)
                 + "ArkModel m stub gpt-4o-mini price=1000/2000\n",
                 persistent_redis, n=1)
    budget, cost = 35000000, 10000000
    key = cl.key("spender", "budget_day=0.035", tenant="solo")
    cl.tenant("pair", "budget_month=0.025")
    key_a = cl.key("first-of-pair", tenant="pair")
    key_b = cl.key("second-of-pair", tenant="pair")
    cl.start()
    gw = cl.nodes[0]
    statuses = []
    for i in range(8):
        st, h, body = post(gw, key, body_for("hello budget"))
        statuses.append(st)
        if st != 200:
            break
        assert json.loads(body)["usage"]["total_tokens"] == 6
        # the spend is settled before the next request
        wait_until(lambda: cl.usage("k", "spender").get("requests")
                   == statuses.count(200), 5)
    assert statuses == [200] * 4 + [429], statuses
    err = assert_openai_error(st, body, 429, "budget_exceeded")
    assert err["type"] == "insufficient_quota", err
    ra = h.get("retry-after")
    # a daily budget is available again at the next UTC midnight
    assert ra and ra.isdigit(), h
    assert 1 <= int(ra) <= seconds_to_utc_midnight() + 5, ra
    msg = err["message"]
    assert "daily" in msg and "key" in msg.lower(), msg
    assert not re.search(r"\d+\.\d+|\d{4,}", msg), msg
    spent = cl.usage("k", "spender")
    assert budget <= spent["spend_nano"] < budget + cost, spent
    assert spent["spend_nano"] == 4 * cost
    assert len(stub.requests()) == 4
    # month hash too
    assert cl.usage("k", "spender", "month")["spend_nano"] == 4 * cost
    # the tenant's monthly budget is shared by its keys
    statuses = []
    for i in range(6):
        st, h, body = post(gw, (key_a, key_b)[i % 2], body_for("hello budget"))
        statuses.append(st)
        if st != 200:
            break
        wait_until(lambda: cl.usage("t", "pair").get("requests")
                   == statuses.count(200), 5)
    assert statuses == [200] * 3 + [429], statuses
    err = assert_openai_error(st, body, 429, "budget_exceeded")
    assert err["type"] == "insufficient_quota", err
    assert "monthly" in err["message"] and "tenant" in err["message"].lower()
    assert not re.search(r"\d+\.\d+|\d{4,}", err["message"]), err
    ra = h.get("retry-after")
    assert ra and ra.isdigit() and int(ra) >= 1
    assert cl.usage("t", "pair", "month")["spend_nano"] == 3 * cost
    assert len(stub.requests()) == 7
    # access log: spend and tenant of every request, 0 for refusals
    log = gw.access_entries(wait_for=9)
    assert len(log) == 9, log
    assert [(e["status"], e["tenant"], e.get("spend_nano") or 0)
            for e in log] == \
        [(200, "solo", cost)] * 4 + [(429, "solo", 0)] + \
        [(200, "pair", cost)] * 3 + [(429, "pair", 0)], log


# --------------------------------------------- 5. spend reconciliation

PRICES = {"m-oa": (0.03331, 0.1), "m-cl": (3, 15), "m-ge": (0.1, 0.4),
          "emb": (0.02, 0)}


def reconcile_ark(stub):
    return (openai_provider(stub, "oa")
            + "ArkProvider cl anthropic %s/v1 key=env:ARK_TEST_PROVIDER_KEY "
              "anthropic-version=2023-06-01 max-tokens=1024\n" % stub.base
            + "ArkProvider ge gemini %s/v1beta "
              "key=env:ARK_TEST_PROVIDER_KEY\n" % stub.base
            + "ArkModel m-oa oa up-oa price=%s/%s\n" % PRICES["m-oa"]
            + "ArkModel m-cl cl up-cl price=%s/%s\n" % PRICES["m-cl"]
            + "ArkModel m-ge ge up-ge price=%s/%s\n" % PRICES["m-ge"]
            + "ArkModel emb oa text-embedding-3-small price=%s/%s\n"
            % PRICES["emb"])


def record_model(rec):
    if rec["path"].endswith("/embeddings"):
        return "emb"
    if rec["path"].endswith("/messages"):
        return "m-cl"
    if ":generateContent" in rec["path"] or \
            ":streamGenerateContent" in rec["path"]:
        return "m-ge"
    return "m-oa"


def expected_usage(stub, tags):
    """Per tag (a word in the request text): usage as the stub served it."""
    out = {tag: Counter() for tag in tags}
    for rec in stub.requests():
        assert rec["outcome"] == "complete", rec
        tag = [t for t in tags if t in json.dumps(rec["body"])]
        assert len(tag) == 1, rec["body"]
        u = rec["usage"]
        out[tag[0]].update({
            "requests": 1, "prompt_tokens": u["prompt_tokens"],
            "completion_tokens": u["completion_tokens"],
            "spend_nano": cost_of(u, *PRICES[record_model(rec)])})
    return out


def mixed_request(gw, key, tag, i):
    kind = i % 6
    text = "%s request number %s of the mix" % (tag, "x" * (i % 5 + 1))
    if kind == 5:
        return gw.request("POST", "/v1/embeddings",
                          {"model": "emb", "input": [text, "more"]}, key)
    model = ("m-oa", "m-oa", "m-cl", "m-cl", "m-ge")[kind]
    return post(gw, key, body_for(text, stream=kind % 2 == 1, model=model))


def check_reconciled(cl, stub, keys, tenant):
    want = expected_usage(stub, list(keys))
    fields = ("requests", "prompt_tokens", "completion_tokens", "spend_nano")

    def got():
        return {tag: {f: cl.usage("k", name).get(f, 0) for f in fields}
                for tag, name in keys.items()}

    expect = {tag: {f: want[tag][f] for f in fields} for tag in keys}
    assert wait_until(lambda: got() == expect, 10), (got(), expect)
    # the tenant's hash is the sum of its keys'
    total = {f: sum(expect[t][f] for t in keys) for f in fields}
    assert {f: cl.usage("t", tenant).get(f, 0) for f in fields} == total
    # and the keys' tokens are the tokens the stub served, all of them
    p, c = stub_tokens(stub)
    assert (total["prompt_tokens"], total["completion_tokens"]) == (p, c)
    return total


def test_65_05_spend_reconciles_exactly(make_gateway, stub, persistent_redis,
                                        tmp_path):
    cl = Cluster(make_gateway, tmp_path, reconcile_ark(stub),
                 persistent_redis, prefix="rec:")
    keys = {"alphakey": "alpha", "bravokey": "bravo"}
    secrets = {tag: cl.key(name, "rpm=1000 tpm=1000000", tenant="acme")
               for tag, name in keys.items()}
    cl.start()
    day0 = time.strftime("%Y%m%d", time.gmtime())

    def one(i):
        tag = ("alphakey", "bravokey")[i % 2]
        return mixed_request(cl.nodes[(i // 2) % 2], secrets[tag], tag, i)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(36)))
    assert [r[0] for r in results] == [200] * 36, results
    total = check_reconciled(cl, stub, keys, "acme")
    assert total["requests"] == 36 and total["spend_nano"] > 0
    # the month hashes agree with the day hashes
    for name in keys.values():
        day = cl.usage("k", name)
        month = cl.usage("k", name, "month")
        assert {f: month.get(f) for f in day} == day
        assert day["cached_tokens"] == 0
    days = {k.rsplit(":", 1)[1] for k in persistent_redis.keys("rec:k:*:u:*")
            if len(k.rsplit(":", 1)[1]) == 8}
    assert days <= {day0, time.strftime("%Y%m%d", time.gmtime())}, days
    # the nodes' access logs say the same, request by request
    entries = [e for gw in cl.nodes for e in gw.access_entries(wait_for=18)]
    assert len(entries) == 36
    assert sum(e["spend_nano"] for e in entries) == total["spend_nano"]
    assert {e["tenant"] for e in entries} == {"acme"}


# ------------------------------------------- 6. node restart mid-traffic

def test_65_06_node_restart_mid_traffic_keeps_totals(make_gateway, stub,
                                                     persistent_redis,
                                                     tmp_path):
    cl = Cluster(make_gateway, tmp_path, reconcile_ark(stub),
                 persistent_redis)
    keys = {"alphakey": "alpha", "bravokey": "bravo"}
    secrets = {tag: cl.key(name, "rpm=5000 tpm=5000000", tenant="acme")
               for tag, name in keys.items()}
    cl.start()
    stub.config(chunk_delay_ms=15)
    stop = threading.Event()
    counts, failures = Counter(), []

    def traffic(t):
        node = cl.nodes[t % 2]
        tag = ("alphakey", "bravokey")[t // 2 % 2]
        i = t
        while not stop.is_set():
            try:
                st, _, body = mixed_request(node, secrets[tag], tag, i)
                counts[st] += 1
                if st != 200:
                    failures.append((st, body))
            except OSError:             # node A is down: nothing sent
                counts["down"] += 1
                time.sleep(0.05)
            i += 4

    threads = [threading.Thread(target=traffic, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    cl.nodes[0].stop(graceful=True)      # in-flight requests finish
    time.sleep(1.0)
    cl.nodes[0].start()
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(60)
    print("\nrestart mid-traffic: %s" % dict(counts))
    assert not failures, failures
    assert counts[200] > 20 and counts["down"] > 0, counts
    check_reconciled(cl, stub, keys, "acme")


# --------------------------------------------------- 7. Redis down / up

def test_65_07_redis_down_local_limits_buffer_then_flush(
        make_gateway, stub, persistent_redis, tmp_path):
    cl = Cluster(make_gateway, tmp_path, reconcile_ark(stub),
                 persistent_redis, allow=[REDIS_WARN])
    keys = {"alphakey": "alpha"}
    key = cl.key("alpha", "rpm=40 tpm=1000000 budget_day=100",
                 tenant="acme")
    a, b = cl.start().nodes
    for i in range(4):
        assert mixed_request(cl.nodes[i % 2], key, "alphakey", i)[0] == 200
    # settlement follows the answer: let it finish before Redis goes (test
    # 13 kills Redis in the middle of settlements)
    assert wait_until(lambda: cl.usage("k", "alpha").get("requests") == 4, 5)
    time.sleep(0.3)
    for gw in (a, b):
        assert gov_metric(gw, "ark_governance_redis_up") == 1
        assert gov_metric(gw, "ark_governance_spend_buffered_nano") == 0
    persistent_redis.stop()
    # node A alone: at most rpm / ArkGovernNodes = 20 within the minute
    t0 = time.time()
    statuses = []
    for i in range(30):
        st, h, body = mixed_request(a, key, "alphakey", 100 + i)
        statuses.append(st)
        if st != 200:
            check_429(st, h, body, "rate_limit_exceeded", "requests")
    elapsed = time.time() - t0
    served_a = statuses.count(200)
    print("\nRedis down, rpm=40 over 2 nodes: node A admitted %d of 30 in "
          "%.1fs" % (served_a, elapsed))
    assert 1 <= served_a <= 20 + int(elapsed / 3.0), statuses
    assert statuses.count(429) >= 30 - 20 - int(elapsed / 3.0), statuses
    # node B has its own share; budgets fail open
    for i in range(3):
        st, _, body = mixed_request(b, key, "alphakey", 200 + i)
        assert st == 200, body
    for gw in (a, b):
        assert gov_metric(gw, "ark_governance_redis_up") == 0
    assert gov_metric(a, "ark_governance_spend_buffered_nano") > 0
    warned_a = len(a.error_lines(WARN_LINE))
    # Redis comes back with its data; later requests flush the buffers
    persistent_redis.start()
    i = 300

    def flushed():
        nonlocal i
        for gw in (a, b):   # 429: the shared bucket may hold the buffered
            assert mixed_request(gw, key, "alphakey", i)[0] in (200, 429)
            i += 1
        return all(gov_metric(gw, "ark_governance_redis_up") == 1
                   and gov_metric(gw, "ark_governance_spend_buffered_nano")
                   == 0 for gw in (a, b))

    assert wait_until(flushed, 20, 0.5), \
        [(gov_metric(gw, "ark_governance_redis_up"),
          gov_metric(gw, "ark_governance_spend_buffered_nano"))
         for gw in (a, b)]
    total = check_reconciled(cl, stub, keys, "acme")
    print("after the flush: %s; warnings A %d, B %d" % (
        total, warned_a, len(b.error_lines(WARN_LINE))))
    # one warning per interval, not one per request (33 while down)
    assert 1 <= warned_a <= 3, a.error_lines(REDIS_WARN)
    warned_b = len(b.error_lines(WARN_LINE))
    assert warned_b <= 3, b.error_lines(REDIS_WARN)


# ------------------------------------------------ 8. budget fail-closed

def test_65_08_budget_fails_closed_when_redis_is_down(
        make_gateway, stub, persistent_redis, tmp_path):
    cl = Cluster(make_gateway, tmp_path,
                 openai_provider(stub)
                 + "ArkModel m stub gpt-4o-mini price=1/2\n"
                 + "ArkBudgetOnRedisDown closed\n",
                 persistent_redis, n=1, allow=[REDIS_WARN])
    with_budget = cl.key("careful", "budget_day=5")
    without = cl.key("carefree")
    gw = cl.start().nodes[0]
    assert post(gw, with_budget, body_for("up"))[0] == 200
    persistent_redis.stop()
    st, h, body = post(gw, with_budget, body_for("down"))
    err = assert_openai_error(st, body, 503, "budget_unavailable")
    assert err["type"] == "service_unavailable_error", err
    assert h.get("retry-after") == "1", h
    st, h, body = post(gw, with_budget, body_for("down stream", stream=True))
    assert_openai_error(st, body, 503, "budget_unavailable")
    st, _, body = post(gw, without, body_for("no budget, no problem"))
    assert st == 200, body
    assert len(stub.requests()) == 2
    persistent_redis.start()
    assert wait_until(lambda: post(gw, with_budget,
                                   body_for("back"))[0] == 200, 20, 0.5)


# ------------------------------------------ 9. per-provider limits

def test_65_09_provider_limit_spills_to_next_channel(make_gateway,
                                                     make_stub,
                                                     persistent_redis,
                                                     tmp_path):
    sa, sb = make_stub("A"), make_stub("B")
    ark = (openai_provider(sa, "prov-a") + openai_provider(sb, "prov-b")
           + "ArkModel m prov-a up-a name=chan-a\n"
             "ArkModel m prov-b up-b name=chan-b\n"
             "ArkRoute m strategy=fallback\n")
    cl = Cluster(make_gateway, tmp_path, ark, persistent_redis)
    rkey = cl.key("few-requests", "rpm@prov-a=3")
    tkey = cl.key("few-tokens", "tpm@prov-a=300")
    cl.start()
    providers = []
    for i in range(6):
        st, h, body = post(cl.nodes[i % 2], rkey, body_for("spill %d" % i))
        assert st == 200, body
        providers.append(h["x-ark-provider"])
        # provider buckets are charged when the request is settled
        wait_until(lambda: cl.usage("k", "few-requests").get("requests")
                   == i + 1, 5)
    assert providers == ["prov-a"] * 3 + ["prov-b"] * 3, providers
    assert len(sa.requests()) == 3 and len(sb.requests()) == 3
    # tokens: A serves until its share is spent, then B, nobody refused
    providers = []
    text = " ".join("w%d" % i for i in range(30))   # 30 + 32 tokens each
    body = body_for(text, max_tokens=40)
    r = reservation(body)            # more than the 62 really used
    t0 = time.time()
    for i in range(10):
        st, h, raw = post(cl.nodes[i % 2], tkey, body)
        assert st == 200, raw
        providers.append(h["x-ark-provider"])
        wait_until(lambda: cl.usage("k", "few-tokens").get("requests")
                   == i + 1, 5)
    refill = 300 * (time.time() - t0) / 60
    first_b = providers.index("prov-b") if "prov-b" in providers else None
    assert first_b and set(providers[first_b:]) == {"prov-b"}, providers
    a_recs = sa.requests()[3:]
    assert len(a_recs) == first_b
    served_a = sum(x["usage"]["prompt_tokens"] + x["usage"]["completion_tokens"]
                   for x in a_recs)
    print("\ntpm@prov-a=300: A served %d tokens in %d requests (reservation "
          "%d)" % (served_a, first_b, r))
    # A was left once its share was used up (at most one request's use
    # beyond the limit), not before the next reservation stopped fitting
    assert served_a <= 300 + 62 + refill, (served_a, providers)
    assert served_a > 300 - r - refill, (served_a, providers)


# --------------------------------------------------- 10. budget shift

def test_65_10_budget_shift_prefers_the_cheap_channel(make_gateway,
                                                      make_stub,
                                                      persistent_redis,
                                                      tmp_path):
    fast, cheap = make_stub("A"), make_stub("B")
    cheap.config(first_byte_delay_ms=300)
    ark = (openai_provider(fast, "fast") + openai_provider(cheap, "cheap")
           + "ArkModel m fast up-a name=dear price=10/10\n"
             "ArkModel m cheap up-b name=cheap price=1/1\n"
             "ArkRoute m strategy=score\n"
             "ArkScoreWeights normal cost=0 latency=1 reliability=0\n"
             "ArkBudgetShift 50 cost=1 latency=0 reliability=0\n")
    cl = Cluster(make_gateway, tmp_path, ark, persistent_redis, n=1)
    warm = cl.key("warm-up")
    # "shift me please": 3 + 5 tokens, 80,000 nano on the dear channel;
    # 50 % of 400,000 is reached with the third of them
    key = cl.key("thrifty", "budget_day=0.0004")
    gw = cl.start().nodes[0]
    seen = []
    for i in range(12):        # latency only: the fast channel wins
        st, h, _ = post(gw, warm, body_for("warm up"))
        assert st == 200
        seen.append(h["x-ark-provider"])
        if seen[-3:] == ["fast"] * 3:
            break
    assert seen[-3:] == ["fast"] * 3, seen
    channels = []
    for i in range(7):
        st, h, body = post(gw, key, body_for("shift me please"))
        assert st == 200, body
        channels.append(h["x-ark-provider"])
        wait_until(lambda: cl.usage("k", "thrifty").get("requests") == i + 1,
                   5)
    spent = cl.usage("k", "thrifty")["spend_nano"]
    print("\nbudget shift: warm-up %s, then %s" % (seen, channels))
    assert channels[0] == "fast", channels
    n_fast = channels.count("fast")
    assert channels == ["fast"] * n_fast + ["cheap"] * (7 - n_fast), channels
    assert n_fast == 3, channels      # 2 x 80,000 < 50 % <= 3 x 80,000
    assert spent == n_fast * 80000 + (7 - n_fast) * 8000, spent


# ------------------------------------------------ 11. cancelled stream

def test_65_11_cancelled_stream_settles_what_was_received(
        make_gateway, stub, persistent_redis, tmp_path):
    cl = Cluster(make_gateway, tmp_path,
                 openai_provider(stub)
                 + "ArkModel m stub gpt-4o-mini price=2/4\n",
                 persistent_redis, n=1)
    key = cl.key("quitter", "tpm=100000 concurrency=2")
    gw = cl.start().nodes[0]
    stub.config(chunk_delay_ms=200)
    # one-letter words: the gateway's prompt estimate (bytes / 4) stays
    # below the stub's word count, whatever it settles the prompt at
    words = " ".join("abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(60))
    body = json.dumps(body_for(words, stream=True)).encode()
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer " + key.encode() + b"\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    received = b""
    content = re.compile(rb'"content":\s*"([^"]*)"')
    while len(content.findall(received)) < 5:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    seen = [p for p in content.findall(received) if p]
    sock.close()
    rec = wait_until(lambda: [r for r in stub.requests() if r["t_end"]],
                     10)[0]
    assert rec["outcome"] == "client_gone", rec
    served = rec["usage"]
    assert served["completion_tokens"] < 62      # really cut short

    def settled():
        u = cl.usage("k", "quitter")
        return u if u.get("requests") == 1 and \
            u.get("completion_tokens", 0) > 0 else None

    u = wait_until(settled, 10)
    assert u, cl.usage("k", "quitter")
    print("\ncancelled stream: client saw %d pieces, Redis %s, stub %s"
          % (len(seen), u, served))
    assert len(seen) <= u["completion_tokens"] <= served["completion_tokens"]
    # no usage came: the prompt is billed at the estimate, ceil(bytes / 4)
    assert u["prompt_tokens"] == -(-len(body) // 4), (u, len(body))
    assert u["prompt_tokens"] <= served["prompt_tokens"]
    assert u["prompt_tokens"] + u["completion_tokens"] <= \
        served["prompt_tokens"] + served["completion_tokens"]
    assert u["spend_nano"] == cost_of(u, 2, 4)
    # the lease was released
    assert wait_until(lambda: persistent_redis.command(
        "ZCARD", "ark:k:quitter:inflight") == 0, 5)
    st, _, b2 = post(gw, key, body_for("still fine"))
    assert st == 200, b2


# -------------------------------------- 12. defaults and token estimate

def test_65_12_limit_defaults_and_token_estimate(make_gateway, stub,
                                                 tmp_path):
    """Node-local (no ArkGovernRedis): ArkLimitDefault fills in what a key
    lacks; ArkTokenEstimate sizes reservations without max_tokens."""
    cl = Cluster(make_gateway, tmp_path,
                 openai_provider(stub) + "ArkModel m stub gpt-4o-mini\n"
                 "ArkLimitDefault rpm=2 tpm=200\n", None, n=1,
                 nodes_directive=False)
    plain = cl.key("defaulted")
    estimated = cl.key("estimated")
    own = cl.key("own-limits", "rpm=4 tpm=100000")
    est = make_gateway(ark=openai_provider(stub)
                       + "ArkModel m stub gpt-4o-mini\n"
                         "ArkLimitDefault tpm=200\nArkTokenEstimate 16\n",
                       start=False, keys_file=cl.keys_file)
    gw = cl.start().nodes[0]
    est.start()
    # without max_tokens the default estimate (256) alone exceeds tpm=200
    st, h, body = post(gw, estimated, body_for("hi"))
    check_429(st, h, body, "rate_limit_exceeded", "tokens", retry_after=False)
    assert stub.requests() == []
    # with ArkTokenEstimate 16 the same request fits
    st, h, body = post(est, estimated, body_for("hi"))
    assert st == 200, body
    check_rate_headers(h, tpm=200)
    # rpm=2 from the default, 4 from the key
    got = [post(gw, plain, body_for("x", max_tokens=5)) for _ in range(3)]
    assert [g[0] for g in got] == [200, 200, 429], got
    check_rate_headers(got[0][1], rpm=2, tpm=200)
    check_429(*got[2], "rate_limit_exceeded", "requests", max_retry=60)
    got = [post(gw, own, body_for("x"))[0] for _ in range(5)]
    assert got == [200] * 4 + [429], got


# ------------------------------- 13. Redis lost amid settlements

def settle_race(cl, stub, key, redis, interrupt):
    """Traffic on both nodes; interrupt(redis) while settlements are in
    flight; then Redis back, buffers flushed; totals must be exact."""
    a, b = cl.nodes
    stop = threading.Event()
    statuses = Counter()

    def traffic(t):
        i = t
        while not stop.is_set():
            st = mixed_request(cl.nodes[t % 2], key, "alphakey", i)[0]
            statuses[st] += 1
            i += 8

    threads = [threading.Thread(target=traffic, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    interrupt(redis)
    stop.set()
    for t in threads:
        t.join(60)
    assert set(statuses) == {200}, statuses
    i = 10000

    def flushed():
        nonlocal i
        for gw in (a, b):
            assert mixed_request(gw, key, "alphakey", i)[0] == 200
            i += 1
        return all(gov_metric(gw, "ark_governance_redis_up") == 1
                   and gov_metric(gw, "ark_governance_spend_buffered_nano")
                   == 0 for gw in (a, b))

    assert wait_until(flushed, 20, 0.5)
    print("\n%d requests, Redis %s" % (statuses[200], interrupt.__doc__))
    check_reconciled(cl, stub, {"alphakey": "alpha"}, "acme")


def test_65_13_redis_pause_amid_settlements_counts_once(
        make_gateway, stub, persistent_redis, tmp_path):
    """A Redis stall longer than ArkGovernTimeout: the commands the nodes
    gave up on still run when Redis resumes, so buffering their usage too
    would count it twice."""
    cl = Cluster(make_gateway, tmp_path, reconcile_ark(stub),
                 persistent_redis, allow=[REDIS_WARN], timeout=None)
    key = cl.key("alpha", "rpm=100000 tpm=100000000", tenant="acme")
    cl.start()

    def stall(redis):
        """paused 1 s (SIGSTOP/SIGCONT)"""
        redis.pause()
        time.sleep(1.0)
        redis.resume()

    settle_race(cl, stub, key, persistent_redis, stall)


def test_65_14_redis_killed_amid_settlements_counts_once(
        make_gateway, stub, persistent_redis, tmp_path):
    """Redis killed (SIGKILL) while settlements run: one it executed (and
    wrote to its append-only file) but could not acknowledge must not be
    written again from the buffer. Timing-dependent: the window is a few
    milliseconds per settlement."""
    cl = Cluster(make_gateway, tmp_path, reconcile_ark(stub),
                 persistent_redis, allow=[REDIS_WARN])
    key = cl.key("alpha", "rpm=100000 tpm=100000000", tenant="acme")
    cl.start()

    def kill(redis):
        """killed (SIGKILL) and restarted"""
        redis.stop()
        time.sleep(0.5)
        redis.start()

    settle_race(cl, stub, key, persistent_redis, kill)
