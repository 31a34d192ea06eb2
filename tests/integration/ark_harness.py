"""Test harness: a real httpd loading the built mod_ark, in a temp root.

Each Httpd instance writes its own ServerRoot (config, logs, run dir)
under a pytest temp directory, listens on a free loopback port, and runs
the Debian httpd binary in the foreground (-DFOREGROUND), in the manner
of httpd's own pyhttpd test harness. Keys are created with the built
ark-keys tool, as an admin would, or written as key lines directly
(add_key_line, add_tenant_line) when a test needs attributes of its own.
Several Httpd instances may share one keys file (keys_file=), as the
nodes of one cluster do.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("ARK_BUILD_DIR", SRC)
HTTPD = os.environ.get("ARK_HTTPD", "/usr/sbin/apache2")
MODULE = os.path.join(BUILD, ".libs", "mod_ark.so")
ARK_KEYS = os.path.join(BUILD, "ark-keys")


def apxs(var):
    return subprocess.check_output(["apxs", "-q", var], text=True).strip()


SYS_MODDIR = apxs("LIBEXECDIR")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_key(keys_file, name, models="*", tenant=None, create=True,
               priority=None, tags=None, extra=None):
    """Creates a virtual key with the real ark-keys CLI; returns the secret.

    extra: attribute words ("rpm=10 budget_day=0.5") appended to the new
    key's line afterwards, for attributes the test sets by hand."""
    cmd = [ARK_KEYS, "create", "-f", keys_file, "-n", name, "-m", models]
    if create and not os.path.exists(keys_file):
        cmd.insert(2, "-c")
    if tenant:
        cmd += ["-t", tenant]
    if priority:
        cmd += ["-p", priority]
    if tags:
        cmd += ["-T", tags]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    secret = out.stdout.strip()
    assert secret.startswith("sk-ark-"), out
    if extra:
        _append_attributes(keys_file, name, extra)
    return secret


def _append_attributes(keys_file, name, extra):
    with open(keys_file) as f:
        lines = f.read().split("\n")
    hits = [i for i, line in enumerate(lines) if line.split(" ", 1)[0] == name]
    assert len(hits) == 1, (name, hits)
    lines[hits[0]] = lines[hits[0]].rstrip() + " " + extra.strip()
    _rewrite(keys_file, "\n".join(lines))


def _rewrite(keys_file, text):
    """Replaces the file atomically (httpd may read it at any time)."""
    tmp = "%s.tmp.%d" % (keys_file, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o640)
    os.replace(tmp, keys_file)


def make_secret(name):
    """A deterministic secret in the format ark-keys makes (sk-ark- and 43
    base64url characters)."""
    digest = hashlib.sha256(("ark-test-secret:" + name).encode()).digest()
    return "sk-ark-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def add_key_line(keys_file, name, extra="", tenant=None, models=None):
    """Appends a key line written by hand (docs/keys.md format), without
    the CLI; returns its secret. extra: further attribute words, e.g.
    "rpm=20 tpm=1000 concurrency=3 budget_day=0.01 tpm@prov-a=50"."""
    secret = make_secret(name)
    words = [name, "sha256:" + hashlib.sha256(secret.encode()).hexdigest()]
    if tenant:
        words.append("tenant=" + tenant)
    if models:
        words.append("models=" + models)
    if extra.strip():
        words.append(extra.strip())
    _append_line(keys_file, " ".join(words))
    return secret


def add_tenant_line(keys_file, tenant, limits):
    """Appends "tenant:<name> <limits>" (e.g. limits "rpm=100 budget_day=2")."""
    _append_line(keys_file, "tenant:%s %s" % (tenant, limits.strip()))


def _append_line(keys_file, line):
    text = ""
    if os.path.exists(keys_file):
        with open(keys_file) as f:
            text = f.read()
    if text and not text.endswith("\n"):
        text += "\n"
    _rewrite(keys_file, text + line + "\n")


def ark_keys(*args, check=True):
    return subprocess.run([ARK_KEYS, *args], check=check,
                          capture_output=True, text=True)


BASE_CONF = """\
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/run/httpd.pid"
Mutex file:{root}/run default
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
ErrorLog "{root}/logs/error.log"
LogLevel {loglevel}
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog "{root}/logs/access.log" common
LoadModule mpm_event_module "{sysmod}/mod_mpm_event.so"
LoadModule authz_core_module "{sysmod}/mod_authz_core.so"
LoadModule ark_module "{module}"
{user}
StartServers 1
ServerLimit 2
ThreadsPerChild {threads}
MaxRequestWorkers {workers}
MinSpareThreads 1
MaxSpareThreads {workers}
KeepAlive On
Timeout 30

ArkKeysFile "{keys_file}"
{access_log}
{ark}

<Location /v1>
    SetHandler ark-gateway
    {location}
</Location>
"""


class Httpd:
    """One httpd instance with mod_ark under root (a directory path)."""

    def __init__(self, root, ark="", location="", env=None, threads=64,
                 loglevel="warn ark:debug", access_log=True, keys_file=None):
        self.root = str(root)
        self.port = free_port()
        self.ark = ark
        self.location = location
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.threads = threads
        self.loglevel = loglevel
        self.access_log = access_log
        self.proc = None
        self.module = MODULE          # another build's mod_ark.so may be set
        self.extra_args = []          # more httpd arguments (e.g. "-X")
        # extra subprocess.Popen arguments, e.g. start_new_session=True so
        # that the node (parent and children) can be killed as one group
        self.popen_extra = {}
        self.keys_file = str(keys_file or os.path.join(self.root, "ark-keys"))
        for d in ("logs", "run"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self.conf_path = os.path.join(self.root, "httpd.conf")

    # -- config ---------------------------------------------------------
    def write_conf(self):
        user = ""
        if os.geteuid() == 0:
            user = "User www-data\nGroup www-data"
        text = BASE_CONF.format(
            root=self.root, port=self.port, sysmod=SYS_MODDIR,
            module=self.module, ark=self.ark, location=self.location,
            keys_file=self.keys_file,
            threads=self.threads, workers=self.threads * 2, user=user,
            loglevel=self.loglevel,
            access_log='ArkAccessLog "%s/logs/ark-access.log"' % self.root
            if self.access_log else "")
        with open(self.conf_path, "w") as f:
            f.write(text)

    def create_key(self, name, models="*", tenant=None, priority=None,
                   tags=None, extra=None):
        secret = create_key(self.keys_file, name, models, tenant,
                            priority=priority, tags=tags, extra=extra)
        os.chmod(self.keys_file, 0o640)
        return secret

    def _ensure_keys_file(self):
        """An empty keys file if there is none, mode 0640: httpd refuses
        one that others may read or write (or its group write)."""
        if not os.path.exists(self.keys_file):
            open(self.keys_file, "w").close()
            os.chmod(self.keys_file, 0o640)

    def configtest(self):
        self.write_conf()
        self._ensure_keys_file()
        return subprocess.run([HTTPD, "-d", self.root, "-f", self.conf_path,
                               "-t"], env=self.env, capture_output=True,
                              text=True)

    # -- lifecycle ------------------------------------------------------
    def start(self, timeout=10):
        """Starts httpd; returns once it has read its whole configuration
        (the second pass: "resuming normal operations") and listens. The
        port accepts connections after the first pass already, when a
        later change to the keys file would still be picked up."""
        self.write_conf()
        self._ensure_keys_file()
        before = self.error_log().count("resuming normal operations")
        self.proc = subprocess.Popen(
            [HTTPD, "-d", self.root, "-f", self.conf_path, "-DFOREGROUND"]
            + self.extra_args, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, **self.popen_extra)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read()
                raise RuntimeError("httpd exited at start: %s\n%s"
                                   % (out, self.error_log()))
            # with -X (one process) httpd logs no "resuming" line
            if ("-X" in self.extra_args or self.error_log().count(
                    "resuming normal operations") > before):
                try:
                    with socket.create_connection(("127.0.0.1", self.port),
                                                  0.2):
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("httpd did not start")

    def children(self):
        """PIDs of the httpd child processes of the running parent."""
        try:
            with open("/proc/%d/task/%d/children"
                      % (self.proc.pid, self.proc.pid)) as f:
                return {int(p) for p in f.read().split()}
        except FileNotFoundError:
            return set()

    def graceful(self, timeout=10):
        """Graceful reload; returns once every old child has exited, so
        that any new connection is served by the new configuration."""
        before = self.error_log().count("resuming normal operations")
        old = self.children()
        subprocess.run([HTTPD, "-d", self.root, "-f", self.conf_path,
                        "-k", "graceful"], env=self.env, check=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if (self.error_log().count("resuming normal operations") > before
                    and not (old & self.children())):
                return
            time.sleep(0.05)
        raise RuntimeError("graceful restart did not complete")

    def restart(self, graceful=False, timeout=10):
        """Stops httpd (see stop) and starts it again on the same root and
        port."""
        self.stop(graceful)
        return self.start(timeout)

    def stop(self, graceful=False, timeout=10):
        """SIGTERM (requests in flight are cut), or with graceful=True
        "-k graceful-stop": the listener closes at once and httpd exits
        once the requests in flight are finished."""
        if graceful and self.proc and self.proc.poll() is None:
            subprocess.run([HTTPD, "-d", self.root, "-f", self.conf_path,
                            "-k", "graceful-stop"], env=self.env, check=True)
        if self.proc and self.proc.poll() is None:
            if not graceful:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    # -- logs -----------------------------------------------------------
    def error_log(self):
        try:
            with open(os.path.join(self.root, "logs", "error.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def access_entries(self, wait_for=0, timeout=3):
        """JSON lines of ArkAccessLog (written after the response)."""
        path = os.path.join(self.root, "logs", "ark-access.log")
        deadline = time.time() + timeout
        while True:
            try:
                with open(path) as f:
                    lines = [json.loads(l) for l in f if l.strip()]
            except FileNotFoundError:
                lines = []
            if len(lines) >= wait_for or time.time() > deadline:
                return lines
            time.sleep(0.05)

    def all_logs_text(self):
        text = ""
        for name in os.listdir(os.path.join(self.root, "logs")):
            with open(os.path.join(self.root, "logs", name),
                      errors="replace") as f:
                text += f.read()
        return text

    def unexpected_log_lines(self, allow=()):
        """[error]/[warn]/[crit] lines in the error log not matched by allow."""
        bad = []
        for line in self.error_log().splitlines():
            if not re.search(r"\[[a-z_]*:(error|warn|crit|alert|emerg)\]",
                             line):
                continue
            if any(re.search(a, line) for a in allow):
                continue
            bad.append(line)
        return bad

    def error_lines(self, pattern):
        """Error log lines matching the regex pattern."""
        return [l for l in self.error_log().splitlines()
                if re.search(pattern, l)]

    # -- client ---------------------------------------------------------
    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def request(self, method, path, body=None, key=None, headers=None,
                timeout=30):
        """Returns (status, headers dict lowercased, body bytes)."""
        h = {}
        if key:
            h["Authorization"] = "Bearer " + key
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def metrics(self, path="/ark/metrics"):
        """The ark-metrics handler's values (the config must map path to
        SetHandler ark-metrics): {"name{labels}": float}."""
        st, _, body = self.request("GET", path)
        assert st == 200, (st, body)
        return metrics_text(body.decode())

    def chat(self, key, model, text, stream=False, timeout=30, **extra):
        body = {"model": model,
                "messages": [{"role": "user", "content": text}]}
        if stream:
            body["stream"] = True
        body.update(extra)
        return self.request("POST", "/v1/chat/completions", body, key,
                            timeout=timeout)


def metrics_text(text):
    """Parses Prometheus text: {"name{labels}": float}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


# ------------------------------------------------------------------ Redis

class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


def redis_command(port, *args, host="127.0.0.1", timeout=5):
    """Sends one command to Redis in RESP and returns the parsed reply:
    str for simple/bulk strings, int, list, None for nil; raises
    RedisError for an error reply and OSError when Redis is unreachable."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    with socket.create_connection((host, port), timeout) as s:
        s.sendall(b"".join(parts))
        reader = s.makefile("rb")
        return _resp_read(reader)


def _resp_read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed by Redis")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise OSError("unexpected RESP reply %r" % line)


def sse_events(raw):
    """Splits an SSE body into the list of data payloads."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    out = []
    for block in re.split(r"\r?\n\r?\n", text):
        data = [l[5:].lstrip(" ") if l.startswith("data:") else None
                for l in block.splitlines()]
        data = [d for d in data if d is not None]
        if data:
            out.append("\n".join(data))
    return out


def assert_openai_error(status, body, want_status, want_code=None):
    assert status == want_status, (status, body)
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    err = doc["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    if want_code:
        assert err["code"] == want_code, err
    return err
