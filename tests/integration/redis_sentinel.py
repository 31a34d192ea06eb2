"""A real Redis master, its replicas and Redis Sentinels on loopback.

For tests that need Redis to fail over (test_72_sentinel.py, chaos
tests). Everything runs from the Debian redis-server binary (Sentinels
as `redis-server <conf> --sentinel`), on free 127.0.0.1 ports, under one
directory, without persistence.

    from redis_sentinel import SentinelCluster

    rs = SentinelCluster(tmp_path / "rs", replicas=1, sentinels=3).start()
    rs.sentinel_list        # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
    rs.master_name          # "mymaster"
    rs.master.port          # the node the Sentinels name now
    rs.command("GET", "k")  # on the current master
    old = rs.kill_master()  # SIGKILL the master; returns its RedisNode
    old = rs.switchover()   # or: SENTINEL FAILOVER, the master stays up
    took = rs.wait_failover(old)   # seconds until the Sentinels name a
                                   # replica that says ROLE master
    rs.wait_replicas_synced()      # every live replica caught up
    rs.stop()               # everything, also from a finally/fixture

start() returns once every replica is connected and every Sentinel
knows the master, all replicas and all other Sentinels, so a failover can
start as soon as the master goes. Sentinel settings: quorum = majority,
down-after-milliseconds (default 1000) and failover-timeout (default
3000) as given. Passwords: password= makes the data nodes require it
(replicas and Sentinels are configured with it too); sentinel_password=
makes the Sentinels require their own.
"""
import os
import signal
import subprocess
import time

from ark_harness import RedisError, free_port, redis_command


def _auth_cmd(port, password, *args, timeout=2):
    """One command, AUTHed first when password is set (a fresh
    connection per call; fine for a test)."""
    if not password:
        return redis_command(port, *args, timeout=timeout)
    import socket
    from ark_harness import _resp_read

    def enc(parts):
        out = [b"*%d\r\n" % len(parts)]
        for a in parts:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(enc(["AUTH", password]) + enc(list(args)))
        f = s.makefile("rb")
        _resp_read(f)
        return _resp_read(f)


class RedisNode:
    """One redis-server (master or replica) on a fixed free port."""

    def __init__(self, root, name, password=None):
        self.root = os.path.join(str(root), name)
        os.makedirs(self.root, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.password = password
        self.proc = None
        self.log = os.path.join(self.root, "redis.log")

    def start(self, replicaof=None):
        cmd = ["redis-server", "--port", str(self.port),
               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", self.root, "--logfile", self.log,
               "--replica-announce-ip", "127.0.0.1",
               "--repl-diskless-sync-delay", "0"]
        if self.password:
            cmd += ["--requirepass", self.password,
                    "--masterauth", self.password]
        if replicaof:
            cmd += ["--replicaof", "127.0.0.1", str(replicaof)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait(lambda: self.ping(), 15, "redis %s did not start" % self.name)
        return self

    def ping(self):
        try:
            return self.command("PING") == "PONG"
        except (OSError, RedisError):
            return False

    def command(self, *args, timeout=2):
        return _auth_cmd(self.port, self.password, *args, timeout=timeout)

    def keys(self, pattern="*"):
        return sorted(self.command("KEYS", pattern))

    def hgetall(self, key):
        """A hash as {field: int or str} (as conftest.RedisServer)."""
        flat = self.command("HGETALL", key) or []
        out = {}
        for field, value in zip(flat[0::2], flat[1::2]):
            try:
                out[field] = int(value)
            except ValueError:
                out[field] = value
        return out

    def role(self):
        """"master", "slave" or None when unreachable."""
        try:
            return self.command("ROLE")[0]
        except (OSError, RedisError):
            return None

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None


class SentinelNode:
    """One Sentinel (redis-server --sentinel) with its own config file."""

    def __init__(self, root, index, password=None):
        self.root = os.path.join(str(root), "sentinel%d" % index)
        os.makedirs(self.root, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.conf = os.path.join(self.root, "sentinel.conf")
        self.log = os.path.join(self.root, "sentinel.log")
        self.proc = None

    def start(self, master_name, master_port, quorum, down_after_ms,
              failover_timeout_ms, data_password=None):
        lines = ["port %d" % self.port, "bind 127.0.0.1",
                 "daemonize no", "dir %s" % self.root,
                 "logfile %s" % self.log,
                 "sentinel announce-ip 127.0.0.1",
                 "sentinel monitor %s 127.0.0.1 %d %d"
                 % (master_name, master_port, quorum),
                 "sentinel down-after-milliseconds %s %d"
                 % (master_name, down_after_ms),
                 "sentinel failover-timeout %s %d"
                 % (master_name, failover_timeout_ms),
                 "sentinel parallel-syncs %s 1" % master_name]
        if data_password:
            lines.append("sentinel auth-pass %s %s"
                         % (master_name, data_password))
        if self.password:
            lines.append("requirepass %s" % self.password)
            lines.append("sentinel sentinel-pass %s" % self.password)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            ["redis-server", self.conf, "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self._alive(), 15, "sentinel did not start")
        return self

    def _alive(self):
        try:
            return self.command("PING") == "PONG"
        except (OSError, RedisError):
            return False

    def command(self, *args, timeout=2):
        return _auth_cmd(self.port, self.password, *args, timeout=timeout)

    def master_addr(self, name):
        """(host, port) this Sentinel names, or None."""
        try:
            r = self.command("SENTINEL", "get-master-addr-by-name", name)
        except (OSError, RedisError):
            return None
        return (r[0], int(r[1])) if r else None

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()


class SentinelCluster:
    """Master + replicas + Sentinels (see the module docstring)."""

    def __init__(self, root, master_name="mymaster", replicas=1,
                 sentinels=3, down_after_ms=1000, failover_timeout_ms=3000,
                 password=None, sentinel_password=None):
        self.root = str(root)
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.password = password
        self.nodes = [RedisNode(root, "redis%d" % i, password)
                      for i in range(replicas + 1)]
        self.sentinels = [SentinelNode(root, i, sentinel_password)
                          for i in range(sentinels)]

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=30):
        first = self.nodes[0].start()
        for n in self.nodes[1:]:
            n.start(replicaof=first.port)
        self.wait_replicas_synced(timeout)
        quorum = len(self.sentinels) // 2 + 1
        for s in self.sentinels:
            s.start(self.master_name, first.port, quorum, self.down_after_ms,
                    self.failover_timeout_ms, self.password)
        self.wait_sentinels_ready(timeout)
        return self

    def stop(self):
        for s in self.sentinels:
            s.kill()
        for n in self.nodes:
            n.kill()

    # -- addresses ---------------------------------------------------------
    @property
    def sentinel_addrs(self):
        return ["127.0.0.1:%d" % s.port for s in self.sentinels]

    @property
    def sentinel_list(self):
        """The Sentinels as ark-cached's redis_sentinels wants them."""
        return ",".join(self.sentinel_addrs)

    def named_master(self):
        """(host, port) the first answering Sentinel names, or None."""
        for s in self.sentinels:
            a = s.master_addr(self.master_name)
            if a:
                return a
        return None

    @property
    def master(self):
        """The RedisNode the Sentinels name as master."""
        addr = self.named_master()
        for n in self.nodes:
            if addr and n.port == addr[1]:
                return n
        raise RuntimeError("the Sentinels name no known node: %r" % (addr,))

    @property
    def replicas(self):
        m = self.master
        return [n for n in self.nodes if n is not m]

    def command(self, *args):
        """One command on the current master."""
        return self.master.command(*args)

    # -- waiting -----------------------------------------------------------
    def wait_replicas_synced(self, timeout=30):
        """Every running replica is connected and has the master's
        replication offset."""
        def synced():
            m = [n for n in self.nodes if n.running and n.role() == "master"]
            if len(m) != 1:
                return False
            info = m[0].command("INFO", "replication")
            want = sum(1 for n in self.nodes if n.running) - 1
            if "connected_slaves:%d" % want not in info:
                return False
            offs = [line.split(",") for line in info.splitlines()
                    if line.startswith("slave") and "ip=" in line]
            mo = [line for line in info.splitlines()
                  if line.startswith("master_repl_offset:")]
            if not mo:
                return False
            moff = mo[0].split(":")[1].strip()
            return all("state=online" in o and "offset=" + moff in o
                       for o in offs)
        _wait(synced, timeout, "replicas did not catch up")

    def wait_sentinels_ready(self, timeout=30):
        nrep = len(self.nodes) - 1
        nsen = len(self.sentinels) - 1

        def ready():
            for s in self.sentinels:
                try:
                    m = s.command("SENTINEL", "master", self.master_name)
                except (OSError, RedisError):
                    return False
                d = dict(zip(m[0::2], m[1::2]))
                if (int(d.get("num-slaves", 0)) < nrep
                        or int(d.get("num-other-sentinels", 0)) < nsen
                        or "s_down" in d.get("flags", "")):
                    return False
            return True
        _wait(ready, timeout, "the Sentinels did not discover each other")

    def kill_master(self, sig=signal.SIGKILL):
        """Kills the current master; returns its RedisNode."""
        m = self.master
        m.kill(sig)
        return m

    def switchover(self):
        """Asks a Sentinel for a failover while the master is alive (a
        planned switchover: the old master becomes a replica, and the
        Sentinels close its clients' connections). Returns the old
        master's RedisNode; follow with wait_failover(old)."""
        m = self.master
        self.sentinels[0].command("SENTINEL", "FAILOVER", self.master_name)
        return m

    def wait_failover(self, old, timeout=60):
        """Waits until every live Sentinel names another node than old,
        and that node answers ROLE master. Returns the seconds waited."""
        t0 = time.monotonic()

        def done():
            names = {s.master_addr(self.master_name)
                     for s in self.sentinels if s.proc.poll() is None}
            if len(names) != 1:
                return False
            addr = names.pop()
            if not addr or addr[1] == old.port:
                return False
            node = [n for n in self.nodes if n.port == addr[1]]
            return bool(node) and node[0].role() == "master"
        _wait(done, timeout, "no failover within %ds" % timeout)
        return time.monotonic() - t0

    def restart_node(self, node):
        """Starts a killed node again on its port, as a replica of the
        current master (Sentinel would reconfigure it so anyway)."""
        node.start(replicaof=self.master.port)
        return node


def _wait(cond, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (OSError, RedisError):
            pass
        time.sleep(step)
    raise RuntimeError(what)
