"""98: soak: steady mixed load for minutes; memory, descriptors, threads
and Redis clients must stay flat.

Real httpd (event MPM, several children of several threads, children
recycled by MaxConnectionsPerChild) loading the built mod_ark, real
ark-cached, one real redis-server (governance through ArkGovernRedis and
ark-cached's tier), three stub provider processes (one of them faulty:
500, 503, 429, reset, abort and error mid-stream, malformed JSON, rules
posted every second). Client threads send a fixed mix: chat non-streamed
and streamed through the cache (a pool of prompts with a short TTL, so
hits, misses, expiries and new stores go on all the time), uncached chat,
a Gemini stream, the faulty model (fallback to a good channel), the
Anthropic front /v1/messages (streamed and not), embeddings, a key with a
small rpm limit (429s), malformed and unauthenticated requests. A sampler
scrapes /ark/metrics and /ark/status and records, every few seconds, the
RSS, open descriptors and threads of the httpd parent, of every httpd
child (by PID: a recycled child ends its series, its successor starts
one) and of ark-cached, with Redis's connected_clients.

The verdict (docs/soak.md explains the bounds): after warm-up, per
process, the (Theil-Sen) slope of RSS against the requests that process
served, per 10 000 requests, and the absolute RSS growth stay under
bounds; descriptors and threads do not grow; Redis clients do not grow.
Every client request must get a well-formed answer of an expected status,
and the error log may only hold the lines the faults explain.

Duration: ARK_SOAK_SECONDS (default 140, about 2.5 min on a 2-core
machine). Longer, from the source tree (see docs/soak.md):
    /usr/bin/python3 tests/integration/test_98_soak.py --seconds 3600 \\
        --build build --report /tmp/soak.txt
"""
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from ark_harness import add_key_line, redis_command, sse_events  # noqa: E402
from conftest import PROVIDER_SECRET  # noqa: E402

STUB = os.path.join(os.path.dirname(HERE), "stub_provider.py")

SECONDS = float(os.environ.get("ARK_SOAK_SECONDS", "140"))
# warm-up: the first quarter of the run, at least 30 s (pools, malloc
# arenas, connection pools and the cache fill up to their steady state)
WARMUP = max(30.0, SECONDS / 4)
# a child's own warm-up (its first requests fill its pools and arenas)
CHILD_WARMUP = 20.0
SAMPLE_EVERY = float(os.environ.get("ARK_SOAK_SAMPLE_SECONDS", "4"))
WORKERS = int(os.environ.get("ARK_SOAK_WORKERS", "6"))
# a client connection is closed and a new one opened after this many
# requests (and on any error), as HTTP clients with a pool do
RECONNECT_EVERY = 40
# httpd children are recycled after this many connections (0 = never)
MAX_CONN_PER_CHILD = int(os.environ.get("ARK_SOAK_MAX_CONN", "600"))
THREADS_PER_CHILD = 8
CACHE_TTL_S = 20
PROMPT_POOL = 400

# -- bounds (docs/soak.md says why these values) ---------------------------
# RSS growth of one process after warm-up, per 10 000 requests it served
# (Theil-Sen slope)
RSS_SLOPE_KB_PER_10K = {"child": 4096, "parent": 256, "cached": 512}
# absolute RSS growth after warm-up (mean of the last 3 samples minus the
# mean of the first 3)
RSS_GROWTH_KB = {"child": 3072, "parent": 512, "cached": 2048}
# a series is judged on RSS only with this many samples after warm-up and
# this many requests served in them
MIN_SAMPLES, MIN_REQUESTS = 6, 1500
# descriptors: the last third of a series may exceed the maximum seen in
# its first third (after warm-up) by at most this (connections in flight)
FD_MARGIN = {"child": 8, "parent": 0, "cached": 4}
THREAD_MARGIN = {"child": 0, "parent": 0, "cached": 0}
REDIS_CLIENTS_MARGIN = 2


# --------------------------------------------------------------- helpers

class StubProcess:
    """tests/stub_provider.py in its own process (the load would starve
    in-process stubs of the GIL), with its control API."""

    def __init__(self, name):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, STUB, "--port", "0", "--name", name,
             "--key", PROVIDER_SECRET],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("READY "), line
        self.port = int(line.split()[1])
        self.base = "http://127.0.0.1:%d" % self.port

    def control(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = json.dumps(body) if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"})
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def proc_stats(pid):
    """(rss_kb, fds, threads) of a live process, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    threads = re.search(r"^Threads:\s+(\d+)", status, re.M)
    if rss is None or threads is None or re.search(r"^State:\s+[ZX]",
                                                    status, re.M):
        return None        # exiting: a zombie has no memory left
    return int(rss.group(1)), fds, int(threads.group(1))


def slope(xs, ys):
    """Theil-Sen slope of ys against xs: the median of the slopes between
    every pair of samples (0 when xs do not vary). One step (an arena or
    an allocator's free list growing once) changes only the pairs that
    straddle it, so it does not read as a trend; a leak raises every
    pair."""
    pairs = sorted((ys[j] - ys[i]) / (xs[j] - xs[i])
                   for i in range(len(xs)) for j in range(i + 1, len(xs))
                   if xs[j] != xs[i])
    if not pairs:
        return 0.0
    mid = len(pairs) // 2
    return pairs[mid] if len(pairs) % 2 else (pairs[mid - 1]
                                              + pairs[mid]) / 2


class Series:
    """Samples of one process: (t, requests it served so far, rss, fds,
    threads)."""

    def __init__(self, kind, pid, born):
        self.kind, self.pid, self.born = kind, pid, born
        self.samples = []
        self.ended = None

    @property
    def name(self):
        return "%s %d" % (self.kind, self.pid)


# ------------------------------------------------------------- the load

PROMPTS = ["Soak question %d: what is %d plus %d, and why?" % (i, i, 7 * i)
           for i in range(PROMPT_POOL)]


class Load:
    """Client threads sending the mix; counts every outcome."""

    MIX = [  # (kind, weight)
        ("chat_cached", 26), ("chat_stream_cached", 14), ("chat_uncached", 8),
        ("gemini_stream", 6), ("flaky", 8), ("flaky_stream", 6),
        ("messages", 6), ("messages_stream", 6), ("embeddings", 8),
        ("limited", 6), ("bad_json", 3), ("bad_key", 3),
    ]

    def __init__(self, port, keys, seed=98, workers=WORKERS):
        self.port = port
        self.workers = workers
        self.keys = keys
        self.seed = seed
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.total = 0
        self.outcomes = {}        # (kind, status or error) -> count
        self.cache = {"hit": 0, "miss": 0, "other": 0}
        self.failures = []        # first few unexpected answers
        self.races = 0            # keep-alive close races, retried
        self.threads = []

    def count(self, kind, what):
        with self.lock:
            self.total += 1
            self.outcomes[(kind, what)] = self.outcomes.get((kind, what),
                                                            0) + 1

    def fail(self, kind, what):
        with self.lock:
            if len(self.failures) < 20:
                self.failures.append("%s: %s" % (kind, what))
        self.count(kind, "FAILED")

    def start(self):
        for i in range(self.workers):
            t = threading.Thread(target=self.worker, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    # -- one request -----------------------------------------------------
    def build(self, kind, rnd, n):
        key = self.keys["main"]
        h = {"Authorization": "Bearer " + key,
             "Content-Type": "application/json"}
        path = "/v1/chat/completions"
        stream = kind.endswith("_stream")
        text = rnd.choice(PROMPTS)
        if kind in ("chat_cached", "chat_stream_cached"):
            body = {"model": "chat", "temperature": 0,
                    "messages": [{"role": "user", "content": text}]}
        elif kind == "chat_uncached":
            body = {"model": "chat", "temperature": 0.9,
                    "messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user",
                                  "content": "unique %d %s" % (n, text)}]}
        elif kind == "gemini_stream":
            body = {"model": "gem", "temperature": 0.8,
                    "messages": [{"role": "user", "content": text}]}
        elif kind in ("flaky", "flaky_stream"):
            body = {"model": "flaky", "temperature": 0.8,
                    "messages": [{"role": "user", "content": text}]}
        elif kind in ("messages", "messages_stream"):
            path = "/v1/messages"
            h = {"x-api-key": key, "anthropic-version": "2023-06-01",
                 "Content-Type": "application/json"}
            body = {"model": rnd.choice(["chat", "gem"]), "max_tokens": 64,
                    "temperature": 0.5,
                    "messages": [{"role": "user", "content": text}]}
        elif kind == "embeddings":
            path = "/v1/embeddings"
            body = {"model": "emb", "input": [text, "second %d" % n]}
        elif kind == "limited":
            h["Authorization"] = "Bearer " + self.keys["limited"]
            body = {"model": "chat", "temperature": 0.9,
                    "messages": [{"role": "user", "content": text}]}
        elif kind == "bad_json":
            return "POST", path, h, b'{"model": "chat", "messages": [', False
        elif kind == "bad_key":
            h["Authorization"] = "Bearer sk-ark-" + "x" * 43
            body = {"model": "chat",
                    "messages": [{"role": "user", "content": text}]}
        if stream:
            body["stream"] = True
        return "POST", path, h, json.dumps(body).encode(), stream

    def check(self, kind, status, headers, data, stream):
        """None if the answer is what this kind may get, else why not."""
        want = {"bad_json": {400}, "bad_key": {401},
                "limited": {200, 429}}.get(kind, {200})
        if status not in want:
            return "status %d: %s" % (status, data[:200])
        if status != 200:
            err = json.loads(data)
            if kind.startswith("messages"):
                return None if err.get("type") == "error" else "shape"
            return None if set(err) == {"error"} else "error shape"
        if kind in ("chat_cached", "chat_stream_cached"):
            c = headers.get("x-ark-cache", "")
            with self.lock:
                self.cache[c if c in ("hit", "miss") else "other"] += 1
        if kind.startswith("messages"):
            if stream:
                ok = b"event: message_stop" in data or b"event: error" in data
                return None if ok else "no message_stop"
            return None if json.loads(data).get("type") == "message" \
                else "not a message"
        if kind == "embeddings":
            doc = json.loads(data)
            return None if len(doc["data"]) == 2 else "embeddings"
        if stream:
            events = sse_events(data)
            if events and events[-1] == "[DONE]":
                return None
            # a fault after bytes reached the client: an error event, and
            # a clean end
            if any('"error"' in e for e in events):
                return None
            return "stream did not end cleanly: %r" % data[-200:]
        doc = json.loads(data)
        return None if doc["choices"][0]["message"] else "no message"

    def worker(self, i):
        rnd = random.Random(self.seed * 1000 + i)
        kinds = [k for k, w in self.MIX for _ in range(w)]
        conn, used, n = None, 0, 0
        while not self.stop.is_set():
            n += 1
            kind = rnd.choice(kinds)
            method, path, h, body, stream = self.build(kind, rnd,
                                                       i * 10 ** 7 + n)
            for attempt in (0, 1):
                if conn is None or used >= RECONNECT_EVERY:
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                      timeout=60)
                    used = 0
                fresh = used == 0
                used += 1
                try:
                    conn.request(method, path, body=body, headers=h)
                    r = conn.getresponse()
                    data = r.read()
                    headers = {k.lower(): v for k, v in r.getheaders()}
                    if r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except (http.client.RemoteDisconnected, ConnectionResetError,
                        BrokenPipeError) as e:
                    conn.close()
                    conn = None
                    if not fresh and attempt == 0:
                        # the server closed an idle kept-alive connection
                        # (a recycled child) as we sent: retry once
                        with self.lock:
                            self.races += 1
                        continue
                    self.fail(kind, "transport: %r" % e)
                    break
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = None
                    self.fail(kind, "transport: %r" % e)
                    break
                try:
                    why = self.check(kind, r.status, headers, data, stream)
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    why = "unparsable answer (%r): %r" % (e, data[:200])
                if why:
                    self.fail(kind, why)
                else:
                    self.count(kind, r.status)
                break
        if conn is not None:
            conn.close()


# ------------------------------------------------------------ the test

FAULTS = ["status:500", "status:503", "status:429:1", "reset",
          "abort_mid_stream:2", "error_mid_stream:2", "malformed"]

ALLOW = [
    # the faulty provider's failures, as the gateway reports them
    r"ARK\d+: .*\bfl\b",
    r"ARK\d+: .*channel fl/",
]


def soak_gateway(make_gateway, stubs, redis, cached,
                 max_conn=MAX_CONN_PER_CHILD, module=None, extra_args=(),
                 env=None, allow=()):
    """The soak's gateway (started); returns (gw, {"main", "limited": key}).
    module/extra_args/env: another mod_ark.so, httpd arguments ("-X") and
    environment (test_99 runs an ASan build this way)."""
    ok, an, fl = stubs["ok"], stubs["an"], stubs["fl"]
    ark = (
        # two active children; ServerLimit leaves slots for children
        # finishing their last connections after MaxConnectionsPerChild
        "StartServers 2\nServerLimit 5\nMaxRequestWorkers %d\n"
        "MinSpareThreads %d\nMaxSpareThreads %d\n"
        "MaxConnectionsPerChild %d\n"
        'CustomLog "logs/pid.log" "%%P"\n'
        % (2 * THREADS_PER_CHILD, THREADS_PER_CHILD, 2 * THREADS_PER_CHILD,
           max_conn)
        + "ArkProvider oa openai %s/v1 key=env:ARK_TEST_PROVIDER_KEY\n"
        % ok.base
        + "ArkProvider an anthropic %s/v1 key=env:ARK_TEST_PROVIDER_KEY "
          "anthropic-version=2023-06-01 max-tokens=1024\n" % an.base
        + "ArkProvider ge gemini %s/v1beta key=env:ARK_TEST_PROVIDER_KEY\n"
        % an.base
        + "ArkProvider fl openai %s/v1 key=env:ARK_TEST_PROVIDER_KEY\n"
        % fl.base
        + "ArkModel chat oa gpt-4o-mini\nArkModel chat an claude-3-5-haiku\n"
          "ArkModel gem ge gemini-1.5-flash\n"
          "ArkModel flaky fl gpt-4o-mini\nArkModel flaky oa gpt-4o-mini\n"
          "ArkRoute flaky strategy=fallback\n"
          "ArkModel emb oa text-embedding-3-small\n"
        + "ArkGovernRedis 127.0.0.1:%d\nArkGovernTimeout 1s\n" % redis.port
        + "ArkCacheServer 127.0.0.1:%d\n" % cached.port
        + "ArkCacheTimeout connect=200ms call=2s\n"
        + "<Location /ark/metrics>\n    SetHandler ark-metrics\n</Location>\n"
        + "<Location /ark/status>\n    SetHandler ark-status\n</Location>\n")
    gw = make_gateway(ark=ark, location="ArkCache on ttl=%ds" % CACHE_TTL_S,
                      start=False, allow=ALLOW + list(allow),
                      threads=THREADS_PER_CHILD, loglevel="warn", env=env)
    if module:
        gw.module = module
    gw.extra_args = list(extra_args)
    keys = {"main": add_key_line(gw.keys_file, "soak-main", tenant="acme"),
            "limited": add_key_line(gw.keys_file, "soak-limited",
                                    "rpm=60", tenant="acme")}
    gw.start()
    return gw, keys


def redis_info(port):
    text = redis_command(port, "INFO")
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


class Sampler:
    def __init__(self, gw, cached, redis, load, stubs):
        self.gw, self.cached, self.redis = gw, cached, redis
        self.load, self.stubs = load, stubs
        self.series = {}          # pid -> Series
        self.rows = []            # table rows
        self.pid_log = os.path.join(gw.root, "logs", "pid.log")
        self.pid_log_pos = 0
        self.per_pid = {}         # requests served per httpd child
        self.scrapes = {"metrics": 0, "status": 0, "failed": 0}
        self.t0 = time.time()

    def served(self):
        """Reads new lines of the %P log: requests per child PID."""
        with open(self.pid_log) as f:
            f.seek(self.pid_log_pos)
            chunk = f.read()
        cut = chunk.rfind("\n") + 1
        self.pid_log_pos += len(chunk[:cut].encode())
        for line in chunk[:cut].split():
            pid = int(line)
            self.per_pid[pid] = self.per_pid.get(pid, 0) + 1

    def scrape(self):
        for what, path in (("metrics", "/ark/metrics"),
                           ("status", "/ark/status")):
            try:
                st, _, body = self.gw.request("GET", path, timeout=30)
                ok = st == 200 and len(body) > 100
            except OSError:
                ok = False
            self.scrapes[what if ok else "failed"] += 1

    def sample(self):
        t = time.time() - self.t0
        self.scrape()
        self.served()
        total = self.load.total
        row = {"t": t, "requests": total, "procs": {}}
        live = {self.gw.proc.pid: "parent", self.cached.proc.pid: "cached"}
        for pid in self.gw.children():
            live[pid] = "child"
        for pid, kind in live.items():
            st = proc_stats(pid)
            if st is None:
                continue
            s = self.series.get(pid)
            if s is None:
                s = self.series[pid] = Series(kind, pid, t)
            served = self.per_pid.get(pid, 0) if kind == "child" else total
            s.samples.append((t, served) + st)
            row["procs"][pid] = (kind,) + st
        for pid, s in self.series.items():
            if pid not in live and s.ended is None:
                s.ended = t
        info = redis_info(self.redis.port)
        row["redis_clients"] = int(info["connected_clients"])
        row["redis_mem_kb"] = int(info["used_memory"]) // 1024
        cinfo = self.cached.info()
        row["cache_entries"] = int(cinfo.get("entries", -1))
        row["cached_clients"] = int(cinfo.get("connected_clients", -1))
        self.rows.append(row)
        # keep the stubs' request records from growing without bound
        for s in self.stubs.values():
            s.control("DELETE", "/_stub/requests")

    # -- report ----------------------------------------------------------
    def table(self):
        out = ["%6s %8s %6s  %-24s %-20s %s" % (
            "t(s)", "requests", "req/s", "ark-cached rss/fd/thr",
            "redis clients/mem", "httpd pid:rss(kB)/fd/thr (P = parent)")]
        prev = None
        for row in self.rows:
            rate = 0.0
            if prev is not None:
                rate = (row["requests"] - prev["requests"]) / max(
                    row["t"] - prev["t"], 1e-6)
            prev = row
            cached = httpd = ""
            for pid, (kind, rss, fds, thr) in sorted(row["procs"].items()):
                cell = "%d/%d/%d" % (rss, fds, thr)
                if kind == "cached":
                    cached = cell
                elif kind == "parent":
                    httpd = "P:" + cell + " " + httpd
                else:
                    httpd += "%d:%s " % (pid, cell)
            out.append("%6.0f %8d %6.1f  %-24s %-20s %s" % (
                row["t"], row["requests"], rate, cached,
                "%d/%dk" % (row["redis_clients"], row["redis_mem_kb"]),
                httpd.strip()))
        return "\n".join(out)


def judge(series, warmup_end):
    """Per series: a verdict line and the list of violations."""
    lines, bad = [], []
    head = ("%-18s %5s %8s %8s %8s %7s %9s %7s %7s  %s" % (
        "process", "smpl", "requests", "rss0 kB", "rss1 kB", "growth",
        "kB/10k rq", "fds", "threads", "verdict"))
    lines.append(head)
    for s in sorted(series.values(), key=lambda s: (s.kind, s.born)):
        # a child recycled during the run warms up itself: its first
        # CHILD_WARMUP seconds are skipped too
        start = warmup_end
        if s.kind == "child":
            start = max(start, s.born + CHILD_WARMUP)
        post = [x for x in s.samples if x[0] >= start]
        if len(post) < 3:
            lines.append("%-18s %5d %8s  (too short after warm-up: "
                         "not judged)" % (s.name, len(s.samples), "-"))
            continue
        ts, reqs, rss, fds, thr = zip(*post)
        served = reqs[-1] - reqs[0]
        growth = sum(rss[-3:]) / 3 - sum(rss[:3]) / 3
        per10k = slope(reqs, rss) * 10000
        third = max(1, len(post) // 3)
        fd_growth = max(fds[-third:]) - max(fds[:third])
        thr_growth = max(thr[-third:]) - max(thr[:third])
        why = []
        judged_rss = len(post) >= MIN_SAMPLES and served >= MIN_REQUESTS
        if judged_rss and per10k > RSS_SLOPE_KB_PER_10K[s.kind]:
            why.append("RSS slope %.0f kB/10k > %d" % (
                per10k, RSS_SLOPE_KB_PER_10K[s.kind]))
        if judged_rss and growth > RSS_GROWTH_KB[s.kind]:
            why.append("RSS growth %.0f kB > %d" % (growth,
                                                     RSS_GROWTH_KB[s.kind]))
        if fd_growth > FD_MARGIN[s.kind]:
            why.append("fds grew by %d > %d" % (fd_growth,
                                                 FD_MARGIN[s.kind]))
        if thr_growth > THREAD_MARGIN[s.kind]:
            why.append("threads grew by %d" % thr_growth)
        verdict = "; ".join(why) or ("ok" if judged_rss
                                     else "ok (fd/thr only: short)")
        lines.append("%-18s %5d %8d %8d %8d %7.0f %9.0f %3d-%-3d %3d-%-3d  %s"
                     % (s.name, len(post), served, rss[0], rss[-1], growth,
                        per10k, min(fds), max(fds), min(thr), max(thr),
                        verdict))
        bad += ["%s: %s" % (s.name, w) for w in why]
    return lines, bad


def fault_injector(fl, stop):
    rnd = random.Random(7)
    while not stop.wait(1.0):
        try:
            fl.control("POST", "/_stub/faults",
                       {"faults": [rnd.choice(FAULTS)]})
        except OSError:
            pass


def test_98_01_soak_flat_memory_fds_threads(make_gateway, redis_server,
                                            make_cached):
    cached = make_cached(redis_server, args=["--default_ttl", "60"])
    stubs = {n: StubProcess(n) for n in ("ok", "an", "fl")}
    stop_faults = threading.Event()
    report_path = os.environ.get("ARK_SOAK_REPORT")
    load = None
    try:
        gw, keys = soak_gateway(make_gateway, stubs, redis_server, cached)
        load = Load(gw.port, keys)
        sampler = Sampler(gw, cached, redis_server, load, stubs)
        injector = threading.Thread(target=fault_injector,
                                    args=(stubs["fl"], stop_faults),
                                    daemon=True)
        injector.start()
        load.start()
        end = sampler.t0 + SECONDS
        while time.time() < end:
            sampler.sample()
            time.sleep(max(0.0, min(SAMPLE_EVERY, end - time.time())))
        sampler.sample()
        load.join()
        stop_faults.set()
        injector.join(5)
        elapsed = time.time() - sampler.t0

        lines, bad = judge(sampler.series, WARMUP)
        post = [r for r in sampler.rows if r["t"] >= WARMUP]
        third = max(1, len(post) // 3)
        rc = [r["redis_clients"] for r in post]
        if max(rc[-third:]) > max(rc[:third]) + REDIS_CLIENTS_MARGIN:
            bad.append("redis connected_clients grew: %d -> %d" % (
                max(rc[:third]), max(rc[-third:])))
        cc = [r["cached_clients"] for r in post]
        if max(cc[-third:]) > max(cc[:third]) + REDIS_CLIENTS_MARGIN:
            bad.append("ark-cached clients grew: %d -> %d" % (
                max(cc[:third]), max(cc[-third:])))
        children = [s for s in sampler.series.values() if s.kind == "child"]
        summary = [
            "soak: %.0f s (warm-up %.0f s), %d requests (%.1f/s), "
            "%d workers, MaxConnectionsPerChild %d, %d httpd children seen "
            "(%d recycled), %d keep-alive races retried" % (
                elapsed, WARMUP, load.total, load.total / elapsed, WORKERS,
                MAX_CONN_PER_CHILD, len(children),
                sum(1 for s in children if s.ended is not None), load.races),
            "cache: %(hit)d hits, %(miss)d misses" % load.cache,
            "outcomes: " + ", ".join("%s %s=%d" % (k, st, n) for (k, st), n
                                     in sorted(load.outcomes.items(),
                                               key=str)),
            "scrapes: %(metrics)d /ark/metrics, %(status)d /ark/status, "
            "%(failed)d failed" % sampler.scrapes,
            "redis connected_clients %d-%d, ark-cached clients %d-%d, "
            "cache entries %d-%d after warm-up" % (
                min(rc), max(rc), min(cc), max(cc),
                min(r["cache_entries"] for r in post),
                max(r["cache_entries"] for r in post)),
        ]
        verdict = "PASS" if not bad and not load.failures else "FAIL"
        report = "\n".join([sampler.table(), ""] + lines + [""] + summary
                           + ["verdict: " + verdict] + bad
                           + load.failures)
        print("\n" + report)
        if report_path:
            with open(report_path, "w") as f:
                f.write(report + "\n")
        assert not load.failures, load.failures
        assert sampler.scrapes["failed"] == 0, sampler.scrapes
        assert load.cache["hit"] > 0 and load.cache["miss"] > 0, load.cache
        assert load.outcomes.get(("limited", 429)), "no 429 from rpm"
        # the faulty channel must have failed over, or the error paths
        # did not run
        assert load.outcomes.get(("flaky", 200)), load.outcomes
        assert not bad, "\n".join(bad)
    finally:
        stop_faults.set()
        if load is not None:
            load.join()
        for s in stubs.values():
            s.stop()


def main():
    import argparse
    ap = argparse.ArgumentParser(
        description="Run the soak test (test_98) for longer.")
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--build", default=os.path.join(
        os.path.dirname(os.path.dirname(HERE)), "build"),
        help="the configured build directory (default: build/)")
    ap.add_argument("--report", help="write the sample table and verdict here")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--max-conn-per-child", type=int)
    args = ap.parse_args()
    env = dict(os.environ, ARK_SOAK_SECONDS=str(args.seconds),
               ARK_BUILD_DIR=os.path.abspath(args.build))
    if args.report:
        env["ARK_SOAK_REPORT"] = os.path.abspath(args.report)
    if args.workers:
        env["ARK_SOAK_WORKERS"] = str(args.workers)
    if args.max_conn_per_child is not None:
        env["ARK_SOAK_MAX_CONN"] = str(args.max_conn_per_child)
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-s",
                            "-p", "no:cacheprovider", os.path.abspath(
                                __file__)], env=env)


if __name__ == "__main__":
    sys.exit(main())
