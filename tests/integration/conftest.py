"""Fixtures: the stub provider and httpd instances with mod_ark.

`stub` is a fresh in-process stub provider (tests/stub_provider.py)
speaking the real OpenAI wire format. `make_gateway` builds an httpd
config around it, starts the real httpd binary with the built module,
and on teardown stops it and fails the test if the error log holds an
[error]/[warn] line the test did not declare as expected. Each call makes
a new node (its own ServerRoot and port); pass keys_file= to let several
nodes share one keys file, as a cluster does.

`redis_server` is a throw-away redis-server (no persistence);
`persistent_redis` one with an append-only file fsynced on every write,
so that stop() (even SIGKILL) and start() on the same port keep all data.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from ark_harness import (Httpd, MODULE, ARK_KEYS, free_port,  # noqa: E402
                         redis_command)
from stub_provider import StubProvider  # noqa: E402

PROVIDER_SECRET = "sk-provider-7f3c9e1b5d2a4f6e8c0b1a3d5e7f9a2b"


def pytest_sessionstart(session):
    for path in (MODULE, ARK_KEYS):
        if not os.path.exists(path):
            pytest.exit("not built: %s (run make first)" % path, 2)


class StubHandle:
    """A running stub provider plus helpers for its control API."""

    def __init__(self, name="stub", key=PROVIDER_SECRET):
        self.key = key
        self.stub = StubProvider(name, key=key)
        self.port = self.stub.start()
        self.base = "http://127.0.0.1:%d" % self.port

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def requests(self):
        return self.control("GET", "/_stub/requests")

    def faults(self, *rules):
        return self.control("POST", "/_stub/faults", {"faults": list(rules)})

    def config(self, **kw):
        return self.control("POST", "/_stub/config", kw)

    def stats(self):
        return self.control("GET", "/_stub/stats")

    def stop(self):
        self.stub.stop()


@pytest.fixture
def stub():
    s = StubHandle()
    yield s
    s.stop()


@pytest.fixture
def make_stub():
    """make_stub(name) starts one more stub provider (stopped at teardown)."""
    started = []

    def make(name):
        s = StubHandle(name)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def make_gateway(tmp_path):
    """make_gateway(ark="directives", location="...", env={}, allow=[regex])"""
    started = []

    def make(ark="", location="", env=None, allow=(), start=True, **kw):
        root = tmp_path / ("gw%d" % len(started))
        root.mkdir()
        env = dict(env or {})
        env.setdefault("ARK_TEST_PROVIDER_KEY", PROVIDER_SECRET)
        gw = Httpd(root, ark=ark, location=location, env=env, **kw)
        gw.allow = list(allow)
        started.append(gw)
        if start:
            gw.start()
        return gw

    yield make
    problems = []
    for gw in started:
        gw.stop()
        problems += gw.unexpected_log_lines(gw.allow)
    assert not problems, "unexpected error log lines:\n" + "\n".join(problems)


def openai_provider(stub, name="stub", extra=""):
    return ("ArkProvider %s openai %s/v1 key=env:ARK_TEST_PROVIDER_KEY %s\n"
            % (name, stub.base, extra))


@pytest.fixture
def gateway(make_gateway, stub):
    """A gateway with one OpenAI-type provider (the stub) and two models."""
    ark = openai_provider(stub) + (
        "ArkModel chat-fast stub gpt-4o-mini-2024-07-18\n"
        "ArkModel chat-big stub gpt-4o\n")
    gw = make_gateway(ark=ark, start=False)
    gw.key = gw.create_key("team-a", models="chat-fast,chat-big",
                           tenant="acme")
    gw.start()
    return gw


# ------------------------------------------------------------ cache side

ARK_CACHED = os.path.join(os.environ.get("ARK_BUILD_DIR", os.path.dirname(
    os.path.dirname(HERE))), "ark-cached")


class RedisServer:
    """A real redis-server on a free loopback port, in its own directory.

    The port and directory are chosen once: stop() then start() brings the
    same server back. With persist=True the data survives that (an
    append-only file, fsynced after every write, so that nothing
    acknowledged before a stop is lost, even with SIGKILL)."""

    def __init__(self, root, persist=False):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.port = free_port()
        self.persist = persist
        self.proc = None

    def start(self):
        aof = (["--appendonly", "yes", "--appendfsync", "always"]
               if self.persist else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", *aof, "--dir", self.root],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        if self.persist:   # wait until the append-only file is loaded
            deadline = time.time() + 15
            while "loading:0" not in self.command("INFO", "persistence"):
                if time.time() > deadline:
                    raise RuntimeError("redis-server did not load its data")
                time.sleep(0.05)
        return self

    def stop(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def pause(self):
        """Freezes redis-server (SIGSTOP): connections stay open, commands
        wait unanswered until resume(), like a long latency spike."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self, *args):
        """One command over RESP (see ark_harness.redis_command)."""
        return redis_command(self.port, *args)

    def hgetall(self, key):
        """A hash as {field: int or str}; {} when it does not exist."""
        flat = self.command("HGETALL", key) or []
        out = {}
        for field, value in zip(flat[0::2], flat[1::2]):
            try:
                out[field] = int(value)
            except ValueError:
                out[field] = value
        return out

    def keys(self, pattern="*"):
        return sorted(self.command("KEYS", pattern))

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args],
                              capture_output=True, text=True,
                              timeout=10).stdout


class CacheDaemon:
    """The real ark-cached, in the foreground, on a free loopback port."""

    def __init__(self, root, redis=None, args=()):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.port = free_port()
        self.redis = redis
        self.args = list(args)
        self.proc = None
        self.log = os.path.join(self.root, "ark-cached.log")

    def start(self):
        cmd = [ARK_CACHED, "--bind", "127.0.0.1", "--port", str(self.port),
               "--threads", "2", "--logfile", self.log,
               "--loglevel", "info"]
        if self.redis:
            cmd += ["--redis_host", "127.0.0.1", "--redis_port",
                    str(self.redis.port)]
        self.proc = subprocess.Popen(cmd + self.args,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        wait_port(self.port, self.proc)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args],
                              capture_output=True, text=True,
                              timeout=10).stdout

    def info(self):
        out = {}
        for line in self.cli("INFO").splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out


def wait_port(port, proc=None, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited (%s): %s" % (
                proc.returncode, proc.stderr.read() if proc.stderr else ""))
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


@pytest.fixture
def redis_server(tmp_path):
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


@pytest.fixture
def persistent_redis(tmp_path):
    """A redis-server whose data survives stop()/start() (same port)."""
    r = RedisServer(tmp_path / "redis-aof", persist=True).start()
    yield r
    r.stop()


@pytest.fixture
def make_cached(tmp_path):
    started = []

    def make(redis=None, args=(), start=True):
        d = CacheDaemon(tmp_path / ("cached%d" % len(started)), redis, args)
        started.append(d)
        return d.start() if start else d

    yield make
    for d in started:
        d.stop()
