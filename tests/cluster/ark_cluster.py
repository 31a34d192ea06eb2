#!/usr/bin/python3
"""The reference multi-node Ark deployment, on loopback, under one temp dir.

    client ──▶ balancer (httpd + mod_proxy_balancer, byrequests)
                 ├──▶ node0 ┐  httpd + mod_ark, one keys file,
                 ├──▶ node1 ├─ governance in Redis (ArkGovernRedis),
                 └──▶ node2 ┘  cache: ArkCacheServer cached0 cached1
                                   │                     │
       providers: stub "pa", stub "pb" (tests/stub_provider.py)
       ark-cached cached0, cached1 ──▶ Redis (tier 2, replication stream)
       Redis: master + 1 replica (+ 3 Sentinels with sentinel=True)

Every process listens on 127.0.0.1 on a free port and runs in its own
process group (start_new_session), so a test can SIGKILL one piece with
everything it forked. docs/deployment.md describes the layout, the
configuration of each piece and the failure behaviour measured by
tests/integration/test_95_chaos.py.

Library:  c = Cluster(sentinel=True).start(); c.url; c.key; ...; c.stop()
CLI:      /usr/bin/python3 tests/cluster/ark_cluster.py start [--direct]
          prints the endpoints and stays in the foreground until Ctrl-C.
The built mod_ark and ark-cached come from ARK_BUILD_DIR (default: the
source tree), as for the integration tests.

Redis modes.  sentinel=True: mod_ark and ark-cached find the master through
three Sentinels (`ArkGovernRedis sentinel=NAME h:p h:p h:p`, ark-cached
`redis_sentinels`), so killing the master means a failover to the replica.
sentinel=False ("direct"): they use the master's address; there are no
Sentinels (they would turn a restarted master into a read-only replica
under its clients' feet), and a Redis outage means the master is killed
and restarted on its append-only file.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "integration"))

from ark_harness import (Httpd, BUILD, SYS_MODDIR,  # noqa: E402
                         add_key_line, add_tenant_line, free_port,
                         redis_command)
from redis_sentinel import SentinelCluster  # noqa: E402

ARK_CACHED = os.path.join(BUILD, "ark-cached")
STUB = os.path.join(TESTS, "stub_provider.py")
PYTHON = "/usr/bin/python3"
PROVIDER_SECRET = "sk-provider-chaos-3b8e1f0a9c7d5e2b4a6f8c0d1e3b5a7c"
MASTER_NAME = "ark"
# prices per 1M tokens: whole nano-units per token (1000 x price), so the
# spend of a request is an exact integer and can be reconciled exactly
PRICES = {"pa": (1, 2), "pb": (3, 4)}


def wait_port(port, proc=None, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def kill_group(proc, sig=signal.SIGKILL):
    """Sends sig to the process group of proc (its own session)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_group_gone(pgid, timeout=10):
    """Until no process of the group is left (children of a killed parent
    die a little later than it, and until the last one has gone the
    kernel still accepts connections on their listening socket)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not group_members(pgid):
            return True
        time.sleep(0.01)
    return False


def group_members(pgid):
    """PIDs of the live (not zombie) processes of a process group."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(name))
    return out


class Proc:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name, root):
        self.name = name
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(self.root, name + ".out")

    def command(self):
        raise NotImplementedError

    def spawn(self, stdout=None):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL,
            stdout=stdout or out, stderr=out, start_new_session=True)
        out.close()
        return self.proc

    def start(self):
        self.spawn()
        wait_port(self.port, self.proc)
        return self

    def kill(self):
        """SIGKILL of the whole process group; returns once it is gone."""
        kill_group(self.proc, signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        kill_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def endpoint(self):
        return "127.0.0.1:%d" % self.port


class Redis(Proc):
    """redis-server for direct mode: an append-only file fsynced on every
    write, so a restart after SIGKILL keeps everything acknowledged."""

    def command(self):
        return ["redis-server", "--port", str(self.port), "--bind",
                "127.0.0.1", "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--dir", self.root,
                "--logfile", os.path.join(self.root, "redis.log")]

    def start(self):
        super().start()
        deadline = time.time() + 15
        while "loading:0" not in self.command_("INFO", "persistence"):
            if time.time() > deadline:
                raise RuntimeError("%s did not load its data" % self.name)
            time.sleep(0.05)
        return self

    def command_(self, *args):
        return redis_command(self.port, *args)


class CacheDaemon(Proc):
    """ark-cached, in the foreground, sharing Redis with its replicas."""

    def __init__(self, name, root, redis_args):
        super().__init__(name, root)
        self.redis_args = list(redis_args)

    def command(self):
        return [ARK_CACHED, "--bind", "127.0.0.1", "--port", str(self.port),
                "--threads", "1", "--logfile",
                os.path.join(self.root, "ark-cached.log"),
                "--loglevel", "notice", "--node_name", self.name,
                "--redis_connect_timeout_ms", "200",
                "--redis_command_timeout_ms", "1000"] + self.redis_args

    def info(self):
        out = {}
        text = redis_command(self.port, "INFO")
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out


class Stub(Proc):
    """tests/stub_provider.py as a process; the control API over HTTP."""

    def __init__(self, name, root):
        super().__init__(name, root)
        self.port = None

    def command(self):
        return [PYTHON, STUB, "--port", str(self.port or 0), "--name",
                self.name, "--key", PROVIDER_SECRET]

    def start(self):
        proc = self.spawn(stdout=subprocess.PIPE)
        line = proc.stdout.readline().decode()
        proc.stdout.close()
        if not line.startswith("READY "):
            raise RuntimeError("stub %s did not start: %r" % (self.name, line))
        self.port = int(line.split()[1])
        return self

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def faults(self, *rules):
        return self.control("POST", "/_stub/faults", {"faults": list(rules)})

    def clear_faults(self):
        return self.control("DELETE", "/_stub/faults")

    def requests(self):
        return self.control("GET", "/_stub/requests")

    def stats(self):
        return self.control("GET", "/_stub/stats")


LB_CONF = """\
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Mutex file:{root}/run default
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
ErrorLog "{root}/logs/error.log"
LogLevel warn
LogFormat "%h %t \\"%r\\" %>s %b %D %{{BALANCER_WORKER_NAME}}e %{{traceparent}}i" lb
CustomLog "{root}/logs/access.log" lb
LoadModule mpm_event_module "{sysmod}/mod_mpm_event.so"
LoadModule authz_core_module "{sysmod}/mod_authz_core.so"
LoadModule alias_module "{sysmod}/mod_alias.so"
LoadModule mime_module "{sysmod}/mod_mime.so"
TypesConfig /etc/mime.types
LoadModule headers_module "{sysmod}/mod_headers.so"
LoadModule slotmem_shm_module "{sysmod}/mod_slotmem_shm.so"
LoadModule proxy_module "{sysmod}/mod_proxy.so"
LoadModule proxy_http_module "{sysmod}/mod_proxy_http.so"
LoadModule proxy_balancer_module "{sysmod}/mod_proxy_balancer.so"
LoadModule lbmethod_byrequests_module "{sysmod}/mod_lbmethod_byrequests.so"
{user}
StartServers 1
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
KeepAlive On
Timeout 60

# Members: connect within 1s; a member that refuses is put aside for
# retry= seconds and the request goes to another member (maxattempts);
# no kept-alive backend connections (disablereuse), so a node's graceful
# reload can never close an idle connection as a request is sent on it.
<Proxy "balancer://ark">
{members}
    ProxySet lbmethod=byrequests maxattempts={attempts} timeout=60
</Proxy>
ProxyPass "/lb-error/" "!"
ProxyPass "/" "balancer://ark/"
# which node (its route name, not its address) served the request
Header always set X-Ark-Node "%{{BALANCER_WORKER_ROUTE}}e" env=BALANCER_WORKER_ROUTE

# errors the balancer makes itself (no node reachable, a node dying
# mid-request) in the OpenAI error format; a node's own errors pass as
# they are (no ProxyErrorOverride)
Alias "/lb-error/" "{errors}/"
<Directory "{errors}">
    Require all granted
    ForceType application/json
</Directory>
ErrorDocument 502 /lb-error/502.json
ErrorDocument 503 /lb-error/503.json
ErrorDocument 504 /lb-error/504.json
"""

LB_ERRORS = {
    502: ("The gateway node serving this request failed.", "api_error",
          "gateway_node_failed"),
    503: ("No gateway node is available.", "service_unavailable_error",
          "no_gateway_node"),
    504: ("The gateway node did not answer in time.", "api_error",
          "gateway_node_timeout"),
}


class Balancer(Httpd):
    """httpd with mod_proxy_balancer in front of the nodes (reuses the
    harness's process handling; only the configuration differs)."""

    def __init__(self, root, nodes):
        super().__init__(root)
        self.nodes = nodes
        self.errors = os.path.join(self.root, "lb-error")
        self.popen_extra = {"start_new_session": True}

    def write_conf(self):
        os.makedirs(self.errors, exist_ok=True)
        for status, (message, etype, code) in LB_ERRORS.items():
            with open(os.path.join(self.errors, "%d.json" % status),
                      "w") as f:
                json.dump({"error": {"message": message, "type": etype,
                                     "param": None, "code": code}}, f)
        members = "\n".join(
            "    BalancerMember http://127.0.0.1:%d connectiontimeout=1 "
            "retry=2 disablereuse=On route=node%d" % (n.port, i)
            for i, n in enumerate(self.nodes))
        user = "User www-data\nGroup www-data" if os.geteuid() == 0 else ""
        with open(self.conf_path, "w") as f:
            f.write(LB_CONF.format(root=self.root, port=self.port,
                                   sysmod=SYS_MODDIR, user=user,
                                   members=members, errors=self.errors,
                                   attempts=max(1, len(self.nodes) - 1)))

    def _ensure_keys_file(self):
        pass


def node_ark(stubs, cache_ports, redis_directive, extra=""):
    """The mod_ark part of a node's configuration (all nodes: the same)."""
    lines = []
    for s in stubs:
        lines.append("ArkProvider %s openai %s/v1 key=env:ARK_PROVIDER_KEY"
                     % (s.name, s.base))
    for s in stubs:
        pin, pout = PRICES[s.name]
        lines.append("ArkModel chat %s gpt-4o-mini price=%d/%d"
                     % (s.name, pin, pout))
    lines += [
        "ArkConnectTimeout 1s",
        "ArkTimeout 20s",
        "ArkStreamIdleTimeout 10s",
        "ArkRoute chat attempts=3 deadline=25s",
        "ArkCircuit failures=5 cooldown=3s",
        "ArkCacheServer " + " ".join("127.0.0.1:%d" % p for p in cache_ports),
        "ArkCacheTimeout connect=100ms call=500ms",
        "ArkCacheBreaker failures=3 cooldown=2s",
        redis_directive,
        "ArkGovernTimeout 500ms",
        "ArkGovernNodes 3",
        extra,
    ]
    return "\n".join(lines) + "\n"


NODE_LOCATIONS = """
<Location /ark/metrics>
    SetHandler ark-metrics
</Location>
"""


class Cluster:
    """The whole deployment. sentinel: Redis through Sentinel (else the
    master's address directly); wait_replicas: mod_ark's and ark-cached's
    WAIT after each write (Sentinel mode only)."""

    def __init__(self, root=None, nodes=3, sentinel=True, wait_replicas=1):
        if root is None:
            root = tempfile.mkdtemp(prefix="ark-cluster-")
            self._own_root = True
        else:
            os.makedirs(root, exist_ok=True)
            self._own_root = False
        # httpd children run as www-data: they read the balancer's error
        # documents at request time
        os.chmod(root, 0o755)
        self.root = str(root)
        self.n_nodes = nodes
        self.sentinel = sentinel
        self.wait_replicas = wait_replicas
        self.keys_file = os.path.join(self.root, "ark-keys")
        self.started = False
        self.stubs = [Stub(name, os.path.join(self.root, "stub-" + name))
                      for name in ("pa", "pb")]
        # Sentinel mode: master + 1 replica + 3 Sentinels (the helper of
        # test_72); direct mode: one master on its append-only file
        self.rs = self.redis = None
        if sentinel:
            self.rs = SentinelCluster(os.path.join(self.root, "redis"),
                                      master_name=MASTER_NAME, replicas=1,
                                      sentinels=3, down_after_ms=1000,
                                      failover_timeout_ms=3000)
        else:
            self.redis = Redis("redis0", os.path.join(self.root, "redis0"))
        self.cached = [CacheDaemon("cached%d" % i,
                                   os.path.join(self.root, "cached%d" % i),
                                   self._cached_redis_args())
                       for i in range(2)]
        self.nodes = []
        for i in range(nodes):
            node = Httpd(os.path.join(self.root, "node%d" % i),
                         keys_file=self.keys_file, threads=16,
                         loglevel="warn",
                         env={"ARK_PROVIDER_KEY": PROVIDER_SECRET})
            node.popen_extra = {"start_new_session": True}
            node.location = "ArkCache on ttl=1h max-temperature=0"
            self.nodes.append(node)
        self.lb = Balancer(os.path.join(self.root, "lb"), self.nodes)
        self.key = None

    # -- configuration ----------------------------------------------------
    def sentinel_list(self):
        return self.rs.sentinel_addrs if self.rs else []

    def _cached_redis_args(self):
        if self.sentinel:
            args = ["--redis_sentinels", ",".join(self.sentinel_list()),
                    "--redis_sentinel_master", MASTER_NAME]
            if self.wait_replicas:
                args += ["--redis_wait_replicas", str(self.wait_replicas)]
            return args
        return ["--redis_host", "127.0.0.1", "--redis_port",
                str(self.redis.port)]

    def redis_directive(self):
        if self.sentinel:
            d = "ArkGovernRedis sentinel=%s %s" % (
                MASTER_NAME, " ".join(self.sentinel_list()))
            if self.wait_replicas:
                d += " wait-replicas=%d" % self.wait_replicas
            return d
        return "ArkGovernRedis 127.0.0.1:%d" % self.redis.port

    def configure_node(self, node, extra=""):
        node.ark = node_ark(self.stubs, [c.port for c in self.cached],
                            self.redis_directive(), extra) + NODE_LOCATIONS

    def _write_keys(self):
        limits = "rpm=1000000 tpm=1000000000 budget_day=100000"
        add_tenant_line(self.keys_file, "chaos", limits)
        self.key = add_key_line(self.keys_file, "chaos-app", limits,
                                tenant="chaos", models="chat")
        os.chmod(self.keys_file, 0o640)

    # -- lifecycle --------------------------------------------------------
    def start(self):
        try:
            for s in self.stubs:
                s.start()
            if self.rs:
                self.rs.start()
            else:
                self.redis.start()
            for c in self.cached:
                c.start()
            self._write_keys()
            for node in self.nodes:
                self.configure_node(node)
                node.start(timeout=30)
            self.lb.start(timeout=30)
            self.started = True
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for p in [self.lb] + self.nodes:
            try:
                if p.proc and p.proc.poll() is None:
                    p.stop()
            except Exception:
                kill_group(p.proc)
            if p.proc and p.proc.stdout:
                p.proc.stdout.close()
        for p in self.cached + ([self.redis] if self.redis else []) \
                + self.stubs:
            p.stop()
        if self.rs:
            self.rs.stop()
        self.started = False

    def cleanup(self):
        """stop() and remove the temp dir (when the cluster made it)."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- faults -----------------------------------------------------------
    def kill_node(self, i):
        """SIGKILL of node i's whole process group (parent and children)."""
        node = self.nodes[i]
        kill_group(node.proc, signal.SIGKILL)
        node.proc.wait()
        wait_group_gone(node.proc.pid)
        if node.proc.stdout:
            node.proc.stdout.close()

    def restart_node(self, i):
        self.nodes[i].start(timeout=30)

    def graceful(self, i, extra=""):
        """Rewrites node i's configuration with extra directives and
        reloads it gracefully (SIGUSR1 to the parent, like apachectl -k
        graceful); returns once every old child has exited."""
        node = self.nodes[i]
        self.configure_node(node, extra)
        node.write_conf()
        before = node.error_log().count("resuming normal operations")
        old = node.children()
        os.kill(node.proc.pid, signal.SIGUSR1)
        deadline = time.time() + 30
        while time.time() < deadline:
            if (node.error_log().count("resuming normal operations") > before
                    and not (old & node.children())):
                return
            time.sleep(0.05)
        raise RuntimeError("graceful restart of node%d did not complete" % i)

    def master(self):
        """(host, port) of the Redis master now."""
        if self.rs:
            addr = self.rs.named_master()
            if addr is None:
                raise RuntimeError("no Sentinel names a master")
            return addr
        return "127.0.0.1", self.redis.port

    def redis_failover(self, timeout=30):
        """SIGKILLs the master. Sentinel mode: waits until the Sentinels
        name the replica and it is master, then restarts the old master
        as its replica. Direct mode: restarts the master on its
        append-only file after 3 s. Returns the seconds from the kill
        until a master accepted writes again."""
        if self.rs:
            old = self.rs.kill_master()
            took = self.rs.wait_failover(old, timeout)
            self.rs.restart_node(old)
            return took
        t0 = time.time()
        self.redis.kill()
        time.sleep(3)
        self.redis.start()
        return time.time() - t0

    # -- reading state ----------------------------------------------------
    def redis_cmd(self, *args):
        host, port = self.master()
        return redis_command(port, *args, host=host)

    def endpoints(self):
        out = {
            "root": self.root,
            "balancer": "http://%s/v1" % self.lb_endpoint(),
            "nodes": ["http://127.0.0.1:%d" % n.port for n in self.nodes],
            "metrics": ["http://127.0.0.1:%d/ark/metrics" % n.port
                        for n in self.nodes],
            "ark_cached": [c.endpoint() for c in self.cached],
            "providers": {s.name: s.base for s in self.stubs},
            "redis_master": "%s:%d" % self.master(),
            "redis_replicas": ["127.0.0.1:%d" % n.port
                               for n in self.rs.replicas] if self.rs else [],
            "sentinels": self.sentinel_list(),
            "keys_file": self.keys_file,
            "model": "chat",
        }
        return out

    def lb_endpoint(self):
        return "127.0.0.1:%d" % self.lb.port

    @property
    def url(self):
        return "http://%s" % self.lb_endpoint()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Start the reference Ark deployment on loopback.")
    parser.add_argument("command", choices=["start"])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sentinel", dest="sentinel", action="store_true",
                      default=True,
                      help="Redis through 3 Sentinels (default)")
    mode.add_argument("--direct", dest="sentinel", action="store_false",
                      help="Redis by the master's address, no Sentinels")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--root", help="directory to use (default: a new "
                        "temp dir, removed at exit)")
    args = parser.parse_args(argv)

    cluster = Cluster(root=args.root, nodes=args.nodes,
                      sentinel=args.sentinel)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        cluster.start()
        # the client key goes to a file, never to the terminal
        key_path = os.path.join(cluster.root, "client-key")
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cluster.key + "\n")
        ep = cluster.endpoints()
        ep["client_key_file"] = key_path
        print(json.dumps(ep, indent=2))
        print("\ntry:\n  curl -s %s/chat/completions -H \"Authorization: "
              "Bearer $(cat %s)\" -H 'Content-Type: application/json' "
              "-d '{\"model\":\"chat\",\"temperature\":0,\"messages\":"
              "[{\"role\":\"user\",\"content\":\"hello\"}]}'\n"
              "Ctrl-C stops everything." % (ep["balancer"], key_path),
              flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if args.root:
            cluster.stop()
        else:
            cluster.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
