"""97: chaos over the reference deployment (tests/cluster/ark_cluster.py).

A steady stream of client requests (concurrent threads; streamed and not;
cacheable and not) goes through the balancer while, phase by phase, one
piece after another fails: an httpd node is SIGKILLed (its whole process
group), an ark-cached is SIGKILLed, the Redis master is SIGKILLed (Sentinel
promotes the replica; in direct mode the master comes back on its
append-only file), one provider answers 500s, then slowly, then resets
connections, and one node is reloaded gracefully with a changed
configuration. Killed pieces are restarted at the end of their phase.

What the clients must see, printed as a table per phase:
  - no request hangs (each has a client timeout; none may reach it);
  - every request ends with a valid answer (a chat.completion with the
    stub's text, or an SSE stream of chunks ending in [DONE]) or a
    well-formed OpenAI error (status >= 400 and {"error": {message, type,
    param, code}}, or an SSE error event followed by [DONE]);
  - the only exception allowed: requests in flight on the node at the
    instant it is SIGKILLed (no process is left to finish them: a
    streamed answer whose head was relayed is cut, which the client sees
    as an incomplete chunked body; the others get the balancer's JSON
    502). They are counted and printed;
  - every request of the phases whose failure the gateway is designed to
    absorb (cache, Redis, provider faults, graceful reload) succeeds.
Afterwards:
  - spend: every request a stub served is billed (a done-key with its
    trace id, or an access log line); the usage recorded in Redis (key and
    tenant hashes) equals the tokens the stub providers served, exactly,
    for the requests settled normally, plus the estimates of the requests
    the killed node had in flight, billed by its restart from its
    in-flight journal (named by ARK00105, counted in estimated_requests
    and estimated_tokens; each at least what its stub served);
  - cache: every entry stored before the faults is still in Redis (by id)
    and still answered as a hit by every node.

Mode: Redis through Sentinel by default; ARK_CHAOS_REDIS=direct uses the
master's address (no failover, the master is restarted instead).
ARK_CHAOS_WAIT_REPLICAS (default 1) sets wait-replicas; ARK_CHAOS_KEEP=DIR
runs the cluster in DIR and keeps its logs; ARK_CHAOS_REPORT=FILE writes
the table there. At the end, with every node killed, the balancer's own
503 must be an OpenAI error too.
"""
import http.client
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter, defaultdict

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))

import ark_cluster  # noqa: E402
from ark_harness import sse_events, metrics_text  # noqa: E402

CLIENT_TIMEOUT = 30          # seconds per socket operation, per request
CLIENTS = 6                  # concurrent client threads
THINK = (0.02, 0.12)         # seconds a client waits between requests
PRE_FAULT_ENTRIES = 12
KILLED_NODE = 1
RELOADED_NODE = 2
PHASES = [                   # name, seconds
    ("baseline", 8),
    ("kill httpd node", 12),
    ("kill ark-cached", 10),
    ("redis failover", 14),
    ("provider 500s", 8),
    ("provider slow", 9),
    ("provider resets", 8),
    ("graceful reload", 10),
]
STREAM_DELAY_MS = 40
FAULT_AT = 1.5               # seconds into a phase when its fault starts
ERROR_KEYS = {"message", "type", "param", "code"}


# ------------------------------------------------------------ the client

class Result:
    __slots__ = ("phase", "stream", "cacheable", "t0", "t1", "status",
                 "verdict", "detail", "node", "trace", "cache")


def trace_id():
    return "%032x" % random.getrandbits(128)


def post(port, key, body, trace, meta=None):
    """One request on a new connection; (status, headers, body bytes).
    meta (a dict) gets "headers" as soon as they arrived."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        c.request("POST", "/v1/chat/completions", json.dumps(body),
                  {"Authorization": "Bearer " + key,
                   "Content-Type": "application/json",
                   "traceparent": "00-%s-%016x-01" % (
                       trace, random.getrandbits(64) | 1)})
        r = c.getresponse()
        headers = {k.lower(): v for k, v in r.getheaders()}
        if meta is not None:
            meta["headers"] = headers
        return r.status, headers, r.read()
    finally:
        c.close()


def is_error_doc(doc):
    return (isinstance(doc, dict) and set(doc) == {"error"}
            and isinstance(doc["error"], dict)
            and set(doc["error"]) == ERROR_KEYS
            and isinstance(doc["error"]["message"], str)
            and doc["error"]["message"])


def expected_texts(prompt):
    return {"%s says: %s" % (s, prompt) for s in ("pa", "pb")}


def judge(status, headers, raw, stream, prompt):
    """("ok" | "error" | "other", detail)."""
    if status >= 400:
        try:
            doc = json.loads(raw)
        except ValueError:
            return "other", "%d non-JSON error body" % status
        if is_error_doc(doc):
            return "error", "%d %s" % (status, doc["error"]["code"])
        return "other", "%d error body not in OpenAI shape" % status
    if status != 200:
        return "other", "status %d" % status
    if not stream:
        try:
            doc = json.loads(raw)
            text = doc["choices"][0]["message"]["content"]
            # usage is optional in OpenAI's schema; a cache hit on an
            # answer that was stored from a stream has none (counted)
            ok = (doc["object"] == "chat.completion"
                  and doc["choices"][0]["finish_reason"] == "stop"
                  and ("usage" not in doc
                       or doc["usage"]["total_tokens"] > 0))
        except (ValueError, KeyError, IndexError, TypeError):
            return "other", "malformed chat.completion"
        if not ok or text not in expected_texts(prompt):
            return "other", "wrong answer %r" % text[:80]
        return "ok", "" if "usage" in doc else "no usage"
    if not headers.get("content-type", "").startswith("text/event-stream"):
        return "other", "stream without text/event-stream"
    events = sse_events(raw)
    if not events or events[-1] != "[DONE]":
        return "other", "stream not ending in [DONE]"
    text = ""
    for data in events[:-1]:
        try:
            doc = json.loads(data)
        except ValueError:
            return "other", "stream event not JSON"
        if "error" in doc:
            if is_error_doc(doc) and data is events[-2]:
                return "error", "stream " + doc["error"]["code"]
            return "other", "malformed stream error event"
        if doc.get("object") != "chat.completion.chunk":
            return "other", "stream event not a chunk"
        for ch in doc.get("choices") or []:
            text += ch.get("delta", {}).get("content") or ""
    if text not in expected_texts(prompt):
        return "other", "wrong streamed answer %r" % text[:80]
    return "ok", ""


class Traffic:
    """CLIENTS threads sending requests through the balancer until stop."""

    def __init__(self, port, key, pool):
        self.port = port
        self.key = key
        self.pool = pool
        self.phase = "warm-up"
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,),
                                         daemon=True)
                        for i in range(CLIENTS)]
        self.seq = 0

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(CLIENT_TIMEOUT * 3)
        assert not any(t.is_alive() for t in self.threads), "a client hangs"

    def run(self, i):
        rng = random.Random(9500 + i)
        while not self.stopping.is_set():
            with self.lock:
                self.seq += 1
                n = self.seq
            stream = rng.random() < 0.5
            cacheable = rng.random() < 0.4
            if cacheable:
                prompt = rng.choice(self.pool)
                body = {"model": "chat", "temperature": 0,
                        "messages": [{"role": "user", "content": prompt}]}
            else:
                prompt = "Unique request %d from client %d, please answer " \
                         "in a few words." % (n, i)
                body = {"model": "chat", "temperature": 0.7,
                        "messages": [{"role": "user", "content": prompt}]}
            if stream:
                body["stream"] = True
            res = Result()
            res.phase, res.stream, res.cacheable = self.phase, stream, \
                cacheable
            res.trace = trace_id()
            res.node = res.cache = None
            res.t0 = time.time()
            meta = {}
            try:
                status, headers, raw = post(self.port, self.key, body,
                                            res.trace, meta)
                res.status = status
                res.node = headers.get("x-ark-node")
                res.cache = headers.get("x-ark-cache")
                res.verdict, res.detail = judge(status, headers, raw,
                                                stream, prompt)
            except TimeoutError:
                res.status, res.verdict, res.detail = None, "hang", \
                    "client timeout"
            except (OSError, http.client.HTTPException) as e:
                res.status, res.verdict = None, "other"
                res.detail = type(e).__name__
                res.node = meta.get("headers", {}).get("x-ark-node")
            res.t1 = time.time()
            with self.lock:
                self.results.append(res)
            time.sleep(rng.uniform(*THINK))


# ------------------------------------------------------------ helpers

def ask(port, key, prompt, stream=False):
    body = {"model": "chat", "temperature": 0,
            "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    return post(port, key, body, trace_id())


def node_metrics(node):
    st, _, body = node.request("GET", "/ark/metrics")
    assert st == 200, body
    return metrics_text(body.decode())


def metric(values, name):
    return sum(v for k, v in values.items()
               if k == name or k.startswith(name + "{"))


def usage_totals(cluster, scope, name):
    total = Counter()
    for k in cluster.redis_cmd("KEYS", "ark:%s:%s:u:*" % (scope, name)):
        if re.fullmatch(r"\d{8}", k.rsplit(":", 1)[1]):
            flat = cluster.redis_cmd("HGETALL", k)
            total.update({f: int(v) for f, v in zip(flat[0::2],
                                                    flat[1::2])})
    return dict(total)


def settle(cluster, timeout=40):
    """Until every node has flushed what it buffered while Redis was away
    and replayed its pending settlements (a request on each node triggers
    the flush), and the usage in Redis stops changing."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        pending = 0
        for node in cluster.nodes:
            m = node_metrics(node)
            mine = (metric(m, "ark_governance_spend_buffered_nano")
                    + metric(m, "ark_governance_tokens_buffered")
                    + metric(m, "ark_governance_pending_settlements"))
            if mine:
                ask(node.port, cluster.key, "settle %f" % time.time())
            pending += mine
        now = usage_totals(cluster, "k", "chaos-app")
        if pending == 0 and now == last:
            return now
        last = now
        time.sleep(1)
    raise AssertionError("governance did not settle: %d pending" % pending)


def access_traces(cluster):
    traces = set()
    for node in cluster.nodes:
        for e in node.access_entries():
            traces.add(e["trace_id"])
    return traces


def billed_traces(cluster):
    """Trace ids whose settlement Redis applied: each settlement's
    done-key is ark:done:<trace id>:<random> (a node killed after its
    settlement but before its access log line billed the request)."""
    return {k.split(":")[2]
            for k in cluster.redis_cmd("KEYS", "ark:done:*")
            if len(k.split(":")) == 4 and len(k.split(":")[2]) == 32}


def journal_estimates(node):
    """{trace id: (prompt, completion, spend_nano)} of the requests the
    node's in-flight journal billed at the estimate after its restart
    (its ARK00105 lines name them)."""
    out = {}
    for line in node.error_lines(r"ARK00105"):
        for m in re.finditer(r"done:([0-9a-f]{32}):[0-9a-f]{16} key '[^']*' "
                             r"(\d+)/(\d+)/(-?\d+)", line):
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)),
                               int(m.group(4)))
    return out


def served_records(cluster):
    """Every stub record that served tokens: (stub, trace id, usage)."""
    out = []
    for s in cluster.stubs:
        for rec in s.requests():
            if rec["usage"]:
                tp = rec["headers"].get("traceparent", "")
                out.append((s.name, tp.split("-")[1] if tp else None,
                            rec["usage"]))
    return out


def table(results, phases):
    rows = [("phase", "requests", "ok", "well-formed errors", "other",
             "max latency s", "cache hits")]
    for name, _ in phases:
        rs = [r for r in results if r.phase == name]
        c = Counter(r.verdict for r in rs)
        rows.append((name, len(rs), c["ok"], c["error"],
                     c["other"] + c["hang"],
                     "%.2f" % max((r.t1 - r.t0 for r in rs), default=0),
                     len([r for r in rs if r.cache == "hit"])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("| " + " | ".join(str(v).ljust(w)
                                       for v, w in zip(r, widths)) + " |")
        if j == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# ------------------------------------------------------------ the test

@pytest.fixture
def cluster():
    mode = os.environ.get("ARK_CHAOS_REDIS", "sentinel")
    c = ark_cluster.Cluster(
        root=os.environ.get("ARK_CHAOS_KEEP"),   # keep the logs there
        sentinel=(mode == "sentinel"),
        wait_replicas=int(os.environ.get("ARK_CHAOS_WAIT_REPLICAS", "1")))
    try:
        c.start()
        yield c
    finally:
        c.cleanup()


def test_97_01_chaos(cluster):
    c = cluster
    lb = c.lb.port
    # -- cache entries stored before any fault
    pre = ["Before the storm, fact %d: which planet is number %d from the "
           "sun?" % (i, i) for i in range(PRE_FAULT_ENTRIES)]
    for p in pre:
        st, h, _ = ask(lb, c.key, p)
        assert st == 200, h
    deadline = time.time() + 10
    while time.time() < deadline:
        if all(ask(lb, c.key, p)[1].get("x-ark-cache") == "hit"
               for p in pre):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the pre-fault entries were not stored")
    pre_ids = set(c.redis_cmd("KEYS", "ark:cache:e:*"))
    assert len(pre_ids) == PRE_FAULT_ENTRIES, pre_ids

    # streams take a while (13 events, STREAM_DELAY_MS apart), so that
    # some are in flight whenever a fault strikes
    for s in c.stubs:
        s.control("POST", "/_stub/config", {"chunk_delay_ms": STREAM_DELAY_MS})
    pool = ["Steady question %d: how many moons does planet %d have?"
            % (i, i) for i in range(30)]
    traffic = Traffic(lb, c.key, pool)
    events = {}

    def fault(name):
        if name == "kill httpd node":
            m = node_metrics(c.nodes[KILLED_NODE])
            events["killed_node_state"] = {
                k: metric(m, "ark_governance_" + k)
                for k in ("spend_buffered_nano", "tokens_buffered",
                          "pending_settlements")}
            t = time.time()
            c.kill_node(KILLED_NODE)
            events["kill"] = (t, time.time())
        elif name == "kill ark-cached":
            c.cached[0].kill()
        elif name == "redis failover":
            events["redis_outage_s"] = c.redis_failover()
        elif name == "provider 500s":
            c.stubs[0].faults({"kind": "status", "code": 500, "times": -1})
        elif name == "provider slow":
            c.stubs[0].faults({"kind": "slow", "ms": 400, "times": -1})
        elif name == "provider resets":
            c.stubs[0].faults({"kind": "reset", "times": -1})
        elif name == "graceful reload":
            c.graceful(RELOADED_NODE,
                       "ArkModel chat-v2 pa gpt-4o price=1/2\n")
            events["reloaded"] = time.time()

    def recover(name):
        if name == "kill httpd node":
            c.restart_node(KILLED_NODE)
        elif name == "kill ark-cached":
            c.cached[0].start()
        elif name.startswith("provider "):
            c.stubs[0].clear_faults()

    traffic.start()
    t_start = time.time()
    try:
        for name, seconds in PHASES:
            t0 = time.time()
            traffic.phase = name
            time.sleep(FAULT_AT)
            fault(name)
            time.sleep(max(0.0, t0 + seconds - time.time()))
            recover(name)
    finally:
        traffic.phase = "done"
        traffic.stop()
    duration = time.time() - t_start
    results = [r for r in traffic.results if r.phase != "done"]

    report = os.environ.get("ARK_CHAOS_REPORT")
    if report:      # the table alone, for docs/deployment.md
        with open(report, "w") as f:
            f.write(table(results, PHASES) + "\n")
    print("\nchaos run: %d requests in %.0f s, Redis mode %s, redis "
          "outage %.1f s" % (len(results), duration,
                             "sentinel" if c.sentinel else "direct",
                             events.get("redis_outage_s", 0)))
    print(table(results, PHASES))
    print("answers without usage (cache hits on stored streams): %d"
          % len([r for r in results if r.detail == "no usage"]))
    print("mode: Redis %s, wait-replicas %d" % (
        "sentinel" if c.sentinel else "direct", c.wait_replicas))
    bad = [r for r in results if r.verdict != "ok"]
    for r in bad:
        print("  %-16s %-6s %-5s node=%s +%.2fs..+%.2fs %s" % (
            r.phase, r.verdict, "sse" if r.stream else "json", r.node,
            r.t0 - t_start, r.t1 - t_start, r.detail))

    # -- no hang, nothing malformed but what the killed node had in flight
    assert not [r for r in results if r.verdict == "hang"]
    assert max(r.t1 - r.t0 for r in results) < CLIENT_TIMEOUT
    k0, k1 = events["kill"]

    def at_kill(r):       # in flight while the node was being killed
        return r.t0 <= k1 and r.t1 >= k0

    at_kill_all = [r for r in results if at_kill(r)]
    in_flight_at_kill = [r for r in bad if at_kill(r)]
    assert all(at_kill(r) for r in bad if r.phase == "kill httpd node"), \
        "failures after the kill"
    assert all(r.node in (None, "node%d" % KILLED_NODE) for r in bad), \
        "a failure on a node that was not killed"
    absorbed = [name for name, _ in PHASES if name != "kill httpd node"]
    # (a request of the phase before that was still on node1 at the kill
    # is the killed node's too)
    assert not [r for r in bad if r.phase in absorbed and not at_kill(r)], \
        "requests failed in a phase the gateway absorbs"
    for name, _ in PHASES:
        assert [r for r in results if r.phase == name], name
    # the reloaded node serves its new configuration
    assert any('model="chat-v2"' in k
               for k in node_metrics(c.nodes[RELOADED_NODE]))

    # -- no node logged a crit/alert/emerg line; what the nodes did
    for i, node in enumerate(c.nodes):
        assert not node.error_lines(r"\[[a-z_]*:(crit|alert|emerg)\]"), i
    gov = Counter()
    for node in c.nodes:
        m = node_metrics(node)
        for name in ("ark_governance_local_decisions_total",
                     "ark_governance_flushes_total",
                     "ark_governance_uncertain_total",
                     "ark_governance_wait_short_total"):
            gov[name] += metric(m, name)
    print("governance after the run (nodes since their last start): "
          + ", ".join("%s %d" % (k, v) for k, v in sorted(gov.items())))

    # -- spend: Redis == what the stubs served; the requests in flight on
    # the killed node are billed by its restart from its in-flight
    # journal, at their actual usage when it was known, else at the
    # estimate (an upper bound, counted in estimated_requests/_tokens)
    usage = settle(c)
    tenant = usage_totals(c, "t", "chaos")
    served = served_records(c)
    logged = access_traces(c)
    billed = billed_traces(c)
    estimated = journal_estimates(c.nodes[KILLED_NODE])
    # settled while Redis was up: by done-key; while it was down (spend
    # buffered, flushed later without per-request keys): by access log
    recorded = logged | billed
    print("traces: served %d, logged %d, with a done-key %d, "
          "with a done-key but not logged %d" % (
              len(served), len(logged), len(billed),
              len({t for _, t, _ in served if t in billed - logged})))
    lost = [(s, t, u) for s, t, u in served if t not in recorded]
    kept = [(s, t, u) for s, t, u in served
            if t in recorded and t not in estimated]
    want = Counter()
    for s, _, u in kept:
        pin, pout = ark_cluster.PRICES[s]
        want.update({"prompt_tokens": u["prompt_tokens"],
                     "completion_tokens": u["completion_tokens"],
                     "spend_nano": 1000 * (pin * u["prompt_tokens"]
                                           + pout * u["completion_tokens"])})
    est_want = Counter()
    for t, (p, comp, spend) in estimated.items():
        est_want.update({"prompt_tokens": p, "completion_tokens": comp,
                         "spend_nano": spend})
    served_of = defaultdict(lambda: [0, 0])
    for _, t, u in served:
        served_of[t][0] += u["prompt_tokens"]
        served_of[t][1] += u["completion_tokens"]
    print("spend: stubs served %d answers; Redis has prompt %d completion "
          "%d spend_nano %d; unbilled: %d" % (
              len(served), usage.get("prompt_tokens", 0),
              usage.get("completion_tokens", 0), usage.get("spend_nano", 0),
              len(lost)))
    print("killed node's governance state just before the kill: %s"
          % events["killed_node_state"])
    print("requests in flight at the kill (%.0f ms until the last process "
          "of node%d was gone): %d (%d not ok)" % (
              (k1 - k0) * 1000, KILLED_NODE, len(at_kill_all),
              len(in_flight_at_kill)))
    print("billed from the killed node's journal at the estimate: %d "
          "requests, %d tokens estimated, %d tokens served by the stubs "
          "(%s)" % (len(estimated),
                    est_want["prompt_tokens"] + est_want["completion_tokens"],
                    sum(sum(served_of[t]) for t in estimated),
                    ", ".join("%s.. est %d+%d served %d+%d"
                              % (t[:8], e[0], e[1], served_of[t][0],
                                 served_of[t][1])
                              for t, e in sorted(estimated.items()))))
    for i, node in enumerate(c.nodes):
        for line in node.error_lines(r"ARK0010[5-9]"):
            print("  node%d: %s" % (i, line))
    want_all = want + est_want
    diff = {f: want_all[f] - usage.get(f, 0)
            for f in ("prompt_tokens", "completion_tokens", "spend_nano")}
    if any(diff.values()):
        # what the nodes said about governance, to find where it went
        print("spend differs (served and logged minus recorded): %s" % diff)
        for i, node in enumerate(c.nodes):
            for line in node.error_lines(r"ARK000(5\d|6\d|9\d)")[-10:]:
                print("  node%d: %s" % (i, line))
    # every request a stub served is billed (done-key or access log line)
    assert not lost, lost
    for f in ("prompt_tokens", "completion_tokens", "spend_nano"):
        assert usage.get(f, 0) == want_all[f], (f, usage, dict(want_all))
        assert tenant.get(f, 0) == want_all[f], (f, tenant, dict(want_all))
    assert usage.get("estimated_requests", 0) == len(estimated)
    assert tenant.get("estimated_requests", 0) == len(estimated)
    assert usage.get("estimated_tokens", 0) == (
        est_want["prompt_tokens"] + est_want["completion_tokens"])
    # an estimate is an upper bound of what was served, and only
    # requests that could have been on the killed node are estimated
    for t, (p, comp, _) in estimated.items():
        assert p >= served_of[t][0] and comp >= served_of[t][1], (
            t, estimated[t], served_of[t])
        assert t in billed
    assert len(estimated) <= len(at_kill_all)

    # -- cache: every pre-fault entry is still there and still a hit
    now_ids = set(c.redis_cmd("KEYS", "ark:cache:e:*"))
    assert pre_ids <= now_ids, pre_ids - now_ids
    misses = defaultdict(list)
    for i, node in enumerate(c.nodes):
        for p in pre:
            st, h, _ = ask(node.port, c.key, p)
            if h.get("x-ark-cache") != "hit":
                misses[i].append(p)
    assert not misses, dict(misses)

    # -- the balancer's own error, with no node left, is an OpenAI error
    for i in range(len(c.nodes)):
        c.kill_node(i)
    st, _, body = ask(lb, c.key, "Anyone there?")
    doc = json.loads(body)
    assert st == 503 and is_error_doc(doc), (st, body)
    assert doc["error"]["code"] == "no_gateway_node"
