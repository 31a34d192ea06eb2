"""Test harness: a real httpd loading the built mod_ark, in a temp root.

Each Httpd instance writes its own ServerRoot (config, logs, run dir)
under a pytest temp directory, listens on a free loopback port, and runs
the Debian httpd binary in the foreground (-DFOREGROUND), in the manner
of httpd's own pyhttpd test harness. Keys are created with the built
ark-keys tool, as an admin would.
"""
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
               priority=None, tags=None):
    """Creates a virtual key with the real ark-keys CLI; returns the secret."""
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
    return secret


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

ArkKeysFile "{root}/ark-keys"
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
                 loglevel="warn ark:debug", access_log=True):
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
        self.keys_file = os.path.join(self.root, "ark-keys")
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
            module=MODULE, ark=self.ark, location=self.location,
            threads=self.threads, workers=self.threads * 2, user=user,
            loglevel=self.loglevel,
            access_log='ArkAccessLog "%s/logs/ark-access.log"' % self.root
            if self.access_log else "")
        with open(self.conf_path, "w") as f:
            f.write(text)

    def create_key(self, name, models="*", tenant=None, priority=None,
                   tags=None):
        secret = create_key(self.keys_file, name, models, tenant,
                            priority=priority, tags=tags)
        os.chmod(self.keys_file, 0o640)
        return secret

    def configtest(self):
        self.write_conf()
        if not os.path.exists(self.keys_file):
            open(self.keys_file, "w").close()
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
        if not os.path.exists(self.keys_file):
            open(self.keys_file, "w").close()
        before = self.error_log().count("resuming normal operations")
        self.proc = subprocess.Popen(
            [HTTPD, "-d", self.root, "-f", self.conf_path, "-DFOREGROUND"],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read()
                raise RuntimeError("httpd exited at start: %s\n%s"
                                   % (out, self.error_log()))
            if self.error_log().count("resuming normal operations") > before:
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

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
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

    def chat(self, key, model, text, stream=False, timeout=30, **extra):
        body = {"model": model,
                "messages": [{"role": "user", "content": text}]}
        if stream:
            body["stream"] = True
        body.update(extra)
        return self.request("POST", "/v1/chat/completions", body, key,
                            timeout=timeout)


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
