#!/usr/bin/python3
"""The cost of wait-replicas, and how fast ark-cached follows a failover.

Starts a real Redis master + 1 replica + 3 Sentinels on loopback
(tests/integration/redis_sentinel.py) and, in one run:

1. WAIT at the Redis level, the way mod_ark settles: a Lua script writing
   a hash field (EVAL) alone, then pipelined with `WAIT 1 <timeout>` in
   the same round trip (what ArkGovernRedis wait-replicas=1 adds to each
   settlement). Rounds alternate, sequential calls on one connection.
2. ark-cached stores (ARK.STORE over RESP): one daemon with
   redis_wait_replicas 0 and one with 1, both on the Sentinels, rounds
   alternating.
3. Failover: store in a loop, kill -9 the master, note when the Sentinels
   have promoted the replica and when ark-cached's first store lands on
   it; the old master then rejoins as a replica; repeated.

Prints a Markdown summary (medians over rounds; ratios against the
baseline measured in the same run). Usage:

    bench/sentinel-wait.py [--rounds N] [--calls N] [--failovers N]

Needs a built tree (ark-cached) and redis-server.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from ark_harness import free_port  # noqa: E402
from redis_sentinel import SentinelCluster  # noqa: E402

BUILD = os.environ.get("ARK_BUILD_DIR", TOP)


def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """A minimal pipelining RESP client (replies parsed just enough)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), 5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def call(self, *cmds):
        self.s.sendall(b"".join(cmds))
        return [self._read() for _ in cmds]

    def _read(self):
        line = self.f.readline()
        if not line:
            raise OSError("closed")
        k, rest = line[:1], line[1:-2]
        if k in (b"+", b"-"):
            return rest.decode()
        if k == b":":
            return int(rest)
        if k == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if k == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise OSError("bad reply %r" % line)

    def close(self):
        self.s.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def timed(fn, n):
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - t) * 1e6)
    total = time.perf_counter() - t0
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "ops": n / total}


SCRIPT = ("redis.call('SET', KEYS[2], '1', 'NX', 'EX', 86400) "
          "return redis.call('HINCRBY', KEYS[1], 'spend_nano', ARGV[1])")


def bench_redis(rs, rounds, calls):
    c = Conn(rs.master.port)
    res = {"EVAL": [], "EVAL + WAIT 1": []}
    for r in range(rounds):
        for name in res:
            def one(i, name=name, r=r):
                cmds = [enc("EVAL", SCRIPT, 2, "bench:u", "bench:done:%d:%d:%s"
                            % (r, i, len(name)), 1000)]
                if "WAIT" in name:
                    cmds.append(enc("WAIT", 1, 150))
                out = c.call(*cmds)
                if "WAIT" in name and out[1] != 1:
                    raise RuntimeError("WAIT got %r" % (out[1],))
            res[name].append(timed(one, calls))
    c.close()
    return res


def start_cached(rs, root, wait, prefix):
    port = free_port()
    log = os.path.join(root, "cached-%s.log" % prefix.strip(":"))
    p = subprocess.Popen(
        [os.path.join(BUILD, "ark-cached"), "--bind", "127.0.0.1",
         "--port", str(port), "--threads", "2", "--logfile", log,
         "--redis_sentinels", rs.sentinel_list,
         "--redis_sentinel_master", rs.master_name,
         "--redis_wait_replicas", str(wait),
         "--redis_command_timeout_ms", "300",
         "--redis_prefix", prefix],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.time() > deadline or p.poll() is not None:
                raise RuntimeError("ark-cached did not start")
            time.sleep(0.05)
    return p, port


def bench_cached(rs, root, rounds, calls):
    daemons = {"ark-cached, redis_wait_replicas 0":
               start_cached(rs, root, 0, "b0:"),
               "ark-cached, redis_wait_replicas 1":
               start_cached(rs, root, 1, "b1:")}
    res = {k: [] for k in daemons}
    try:
        conns = {k: Conn(port) for k, (_, port) in daemons.items()}
        for r in range(rounds):
            for name, c in conns.items():
                def one(i, c=c, r=r):
                    out = c.call(enc("ARK.STORE", "benchns",
                                     "question %d of round %d about %s"
                                     % (i, r, "x" * (i % 7)),
                                     "answer %d" % i, "TTL", 600))
                    if not isinstance(out[0], int):
                        raise RuntimeError("STORE: %r" % (out[0],))
                res[name].append(timed(one, calls))
        for c in conns.values():
            c.close()
    finally:
        for p, _ in daemons.values():
            p.send_signal(signal.SIGTERM)
            p.wait()
    return res


def entries(node, prefix):
    try:
        return len(node.command("KEYS", prefix + "e:*"))
    except OSError:
        return -1


def bench_failover(rs, root, n):
    p, port = start_cached(rs, root, 1, "fo:")
    out = []
    try:
        c = Conn(port)
        i = 0
        for _ in range(n):
            new = rs.replicas[0]
            base = entries(new, "fo:")
            old = rs.master
            t_kill = time.monotonic()
            old.kill()
            t_prom = t_named = t_first = None
            while t_first is None and time.monotonic() - t_kill < 30:
                c.call(enc("ARK.STORE", "fons", "failover q %d" % i, "a",
                           "TTL", 600))
                i += 1
                now = time.monotonic()
                if t_prom is None and new.role() == "master":
                    t_prom = now
                if t_named is None and (rs.sentinels[0].master_addr(
                        rs.master_name) or (0, 0))[1] == new.port:
                    t_named = now
                if t_prom is not None and entries(new, "fo:") > base:
                    t_first = now
                time.sleep(0.01)
            if t_first is None:
                raise RuntimeError("ark-cached never wrote to the new master")
            out.append((t_prom - t_kill,
                        (t_named or t_first) - t_kill, t_first - t_kill))
            rs.wait_failover(old)
            rs.restart_node(old)
            rs.wait_replicas_synced()
            rs.wait_sentinels_ready()
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--failovers", type=int, default=3)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="ark-sentinel-bench-")
    load = os.getloadavg()
    rs = SentinelCluster(os.path.join(root, "rs")).start()
    try:
        red = bench_redis(rs, a.rounds, a.calls)
        cac = bench_cached(rs, root, a.rounds, a.calls)
        fo = bench_failover(rs, root, a.failovers) if a.failovers else []
    finally:
        rs.stop()
    load2 = os.getloadavg()

    def med(rows, k):
        return statistics.median(r[k] for r in rows)

    print("\n## Sentinel: cost of wait-replicas (bench/sentinel-wait.py)\n")
    print("%s UTC, --rounds %d --calls %d; load average %.1f at start, "
          "%.1f at end (other CPU load: figures are noisy)\n"
          % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), a.rounds,
             a.calls, load[0], load2[0]))
    print("| variant | median ops/s | median p50 (us) | median p99 (us) |")
    print("| --- | ---: | ---: | ---: |")
    for group in (red, cac):
        for name, rows in group.items():
            print("| %s | %.0f | %.0f | %.0f |" % (
                name, med(rows, "ops"), med(rows, "p50"), med(rows, "p99")))
    for group in (red, cac):
        (b, brow), (w, wrow) = list(group.items())
        print("\n- %s vs %s: p50 x %.2f, throughput x %.2f" % (
            w, b, med(wrow, "p50") / med(brow, "p50"),
            med(wrow, "ops") / med(brow, "ops")))
    if fo:
        print("\nFailover (kill -9 of the master; down-after-milliseconds "
              "1000, failover-timeout 3000):\n")
        print("| # | replica says ROLE master (s) | a Sentinel names it "
              "(s) | first ark-cached store on it (s) |")
        print("| ---: | ---: | ---: | ---: |")
        for k, (prom, named, first) in enumerate(fo, 1):
            print("| %d | %.2f | %.2f | %.2f |" % (k, prom, named, first))
        print("\n(seconds after the kill; a Sentinel is asked once per "
              "store-loop turn, so its column is an upper bound)")
    subprocess.run(["rm", "-rf", root])


if __name__ == "__main__":
    main()
