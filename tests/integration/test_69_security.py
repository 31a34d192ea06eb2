"""69: the hardened attack surface (docs/security.md).

Input limits (JSON depth, elements, messages, API key length) refuse with
a 4xx in the OpenAI shape before anything reaches the upstream; a keys
file others may read is refused at configtest; upstream TLS is verified
(a CA of the test's own, made with the openssl CLI, is trusted only with
ArkCACertificateFile; host names are checked); plain http:// needs
plaintext=on except to loopback; a stream whose upstream falls silent is
ended with an SSE error event after ArkStreamIdleTimeout.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from ark_harness import ark_keys, assert_openai_error, sse_events
from conftest import PROVIDER_SECRET, openai_provider
from stub_provider import StubProvider

MODELS = "ArkModel chat-fast stub gpt-4o-mini\n"
MSG = [{"role": "user", "content": "hi"}]


def secure_gateway(make_gateway, stub, ark=""):
    gw = make_gateway(ark=openai_provider(stub) + MODELS + ark, start=False)
    gw.key = gw.create_key("sec")
    gw.start()
    return gw


def post(gw, body, path="/v1/chat/completions", headers=None):
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    h = {"Authorization": "Bearer " + gw.key,
         "Content-Type": "application/json"}
    h.update(headers or {})
    return gw.request("POST", path, body, headers=h)


def nested(depth):
    """depth arrays nested in each other: [[...[1]...]]."""
    return "[" * depth + "1" + "]" * depth


def chat_with_metadata(raw_metadata):
    """A valid chat body whose "metadata" is the given JSON text (the stub
    ignores it; OpenAI-type upstreams receive the client's bytes)."""
    return ('{"model":"chat-fast","messages":[{"role":"user",'
            '"content":"hi"}],"metadata":%s}' % raw_metadata)


# ------------------------------------------------------------ input limits

def test_69_01_json_depth(make_gateway, stub):
    gw = secure_gateway(make_gateway, stub)
    # the top object plus 63 arrays: 64 levels, the default, passes
    st, _, body = post(gw, chat_with_metadata(nested(63)))
    assert st == 200, body
    st, _, body = post(gw, chat_with_metadata(nested(64)))
    err = assert_openai_error(st, body, 400, "json_too_deep")
    assert "at most 64 levels" in err["message"]
    assert err["type"] == "invalid_request_error"
    # a nesting bomb is refused at the limit, not parsed, never echoed
    st, _, body = post(gw, "[" * 500000)
    assert_openai_error(st, body, 400, "json_too_deep")
    assert len(body) < 300
    assert len(stub.requests()) == 1


def test_69_02_json_elements(make_gateway, stub):
    gw = secure_gateway(make_gateway, stub,
                        ark="<Location /v1/small>\n"
                            "    ArkMaxJsonElements 1000\n"
                            "</Location>\n")
    # default 100000: 100001 array items in one field
    items = "[" + ",".join(["0"] * 100001) + "]"
    st, _, body = post(gw, chat_with_metadata(items))
    err = assert_openai_error(st, body, 400, "json_too_many_elements")
    assert "at most 100000 array items and object members" in err["message"]
    # per location: model, messages, metadata, 1 message, role, content
    # (6) + 994 items = 1000 pass; one more is refused
    ok = chat_with_metadata("[" + ",".join(["0"] * 994) + "]")
    st, _, body = post(gw, ok, path="/v1/small/chat/completions")
    assert st == 200, body
    bad = chat_with_metadata("[" + ",".join(["0"] * 995) + "]")
    st, _, body = post(gw, bad, path="/v1/small/chat/completions")
    err = assert_openai_error(st, body, 400, "json_too_many_elements")
    assert "at most 1000 " in err["message"]
    assert len(stub.requests()) == 1


def test_69_03_messages(make_gateway, stub):
    gw = secure_gateway(make_gateway, stub,
                        ark="<Location /v1/short>\n"
                            "    ArkMaxMessages 2\n"
                            "</Location>\n")
    many = [{"role": "user", "content": "m%d" % i} for i in range(2049)]
    st, _, body = post(gw, {"model": "chat-fast", "messages": many})
    err = assert_openai_error(st, body, 400, "too_many_messages")
    assert err["param"] == "messages"
    assert err["message"] == ("The request has 2049 messages; at most 2048 "
                              "are allowed.")
    st, _, body = post(gw, {"model": "chat-fast", "messages": many[:2048]})
    assert st == 200, body
    # a location's own limit, on both fronts
    three = many[:3]
    st, _, body = post(gw, {"model": "chat-fast", "messages": three},
                       path="/v1/short/chat/completions")
    assert_openai_error(st, body, 400, "too_many_messages")
    st, _, body = post(gw, {"model": "chat-fast", "max_tokens": 50,
                            "messages": three},
                       path="/v1/short/messages",
                       headers={"anthropic-version": "2023-06-01"})
    assert st == 400, body
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert "at most 2 are allowed" in json.loads(body)["error"]["message"]
    # embeddings have no messages to count
    st, _, body = post(gw, {"model": "chat-fast", "input": "x",
                            "messages": three},
                       path="/v1/short/embeddings")
    assert st == 200, body
    assert len(stub.requests()) == 2


def test_69_04_api_key_length(make_gateway, stub):
    gw = secure_gateway(make_gateway, stub)
    for header in ("Authorization", "x-api-key"):
        value = "k" * 513
        if header == "Authorization":
            value = "Bearer " + value
        st, _, body = gw.request("POST", "/v1/chat/completions",
                                 json.dumps({"model": "chat-fast",
                                             "messages": MSG}),
                                 headers={header: value})
        err = assert_openai_error(st, body, 401, "invalid_api_key")
        assert "at most 512 bytes" in err["message"]
        assert b"kkkk" not in body
    # 512 bytes is looked up (and unknown)
    st, _, body = gw.request("GET", "/v1/models",
                             headers={"Authorization": "Bearer " + "k" * 512})
    err = assert_openai_error(st, body, 401, "invalid_api_key")
    assert err["message"] == "Incorrect API key provided."
    assert stub.requests() == []
    assert "kkkk" not in gw.all_logs_text()


def test_69_05_limit_directives_are_validated(make_gateway, stub):
    for line, want in (
            ("ArkMaxJsonDepth 7", "ArkMaxJsonDepth: '7' is not a number "
                                  "between 8 and 2048"),
            ("ArkMaxJsonElements 10k", "ArkMaxJsonElements: '10k' is not a "
                                       "number between 100 and 1000000000"),
            ("ArkMaxMessages 0", "ArkMaxMessages: '0' is not a number "
                                 "between 1 and 1000000"),
            ("ArkStreamIdleTimeout 1500ms", "ArkStreamIdleTimeout: '1500ms' "
                                            "is not off or a whole number of "
                                            "seconds between 1s and 1h"),
            ("ArkStreamIdleTimeout 2h", "between 1s and 1h"),
            ("ArkCACertificateFile /nonexistent/ca.pem",
             "ArkCACertificateFile: cannot read '/nonexistent/ca.pem'")):
        gw = make_gateway(ark=openai_provider(stub) + line + "\n",
                          start=False)
        r = gw.configtest()
        assert r.returncode != 0 and want in r.stderr, (line, r.stderr)
    gw = make_gateway(ark=openai_provider(stub) + "ArkMaxJsonDepth 2048\n"
                      "ArkMaxJsonElements 1000000000\nArkMaxMessages 1\n"
                      "ArkStreamIdleTimeout off\n", start=False)
    r = gw.configtest()
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------- keys file mode

def test_69_06_keys_file_mode(make_gateway, stub):
    gw = make_gateway(ark=openai_provider(stub) + MODELS, start=False)
    gw.create_key("a")
    assert os.stat(gw.keys_file).st_mode & 0o777 == 0o640
    assert gw.configtest().returncode == 0
    for mode, what in ((0o644, "readable by others"),
                       (0o660, "writable by its group"),
                       (0o642, "writable by others")):
        os.chmod(gw.keys_file, mode)
        r = gw.configtest()
        assert r.returncode != 0
        assert ("ArkKeysFile: keys file '%s' has mode %04o: it must not be "
                "%s; run 'chmod 640 %s'" % (gw.keys_file, mode, what,
                                           gw.keys_file)) in r.stderr, \
            r.stderr
        # ark-keys check judges as httpd does
        out = ark_keys("check", "-f", gw.keys_file, check=False)
        assert out.returncode == 1 and "chmod 640" in out.stderr
    # an edit by ark-keys leaves the file private again, and says so
    os.chmod(gw.keys_file, 0o644)
    out = ark_keys("create", "-f", gw.keys_file, "-n", "b")
    assert "mode changed from 0644 to 0640" in out.stderr
    assert os.stat(gw.keys_file).st_mode & 0o777 == 0o640
    assert gw.configtest().returncode == 0


# ------------------------------------------------------------ upstream TLS

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def test_ca():
    """A CA, a server certificate for 127.0.0.1/localhost signed by it,
    and one for another host name: PEM paths in a dict. In a directory of
    its own that httpd's User can read (pytest's is private to the user
    running the tests; libcurl reads the CA file in the children)."""
    d = tempfile.mkdtemp(prefix="ark-test-ca-")
    os.chmod(d, 0o755)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=Ark Test CA", "-keyout", "ca.key", "-out",
            "ca.pem", cwd=d)
    for name, san in (("server", "IP:127.0.0.1,DNS:localhost"),
                      ("other", "DNS:other.example")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj",
                "/CN=" + name, "-keyout", name + ".key", "-out",
                name + ".csr", cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)
    os.chmod(os.path.join(d, "ca.pem"), 0o644)
    yield {k: os.path.join(d, k) for k in
           ("ca.pem", "ca.key", "server.pem", "server.key", "other.pem",
            "other.key")}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_tls_stub():
    started = []

    def make(cert, key):
        s = StubProvider("tls", key=PROVIDER_SECRET, tls=(cert, key))
        s.start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def tls_gateway(make_gateway, tls_stub, extra=""):
    ark = ("ArkProvider sec openai https://127.0.0.1:%d/v1 "
           "key=env:ARK_TEST_PROVIDER_KEY\n"
           "ArkModel chat-fast sec gpt-4o-mini\n" % tls_stub.port) + extra
    gw = make_gateway(ark=ark, start=False)
    gw.key = gw.create_key("sec")
    gw.start()
    return gw


def test_69_07_upstream_tls_needs_a_trusted_ca(make_gateway, make_tls_stub,
                                               test_ca):
    tls_stub = make_tls_stub(test_ca["server.pem"], test_ca["server.key"])
    # not trusted by libcurl's default bundle: refused before any request
    gw = tls_gateway(make_gateway, tls_stub)
    st, _, body = post(gw, {"model": "chat-fast", "messages": MSG})
    err = assert_openai_error(st, body, 502, "upstream_unreachable")
    assert "TLS" in err["message"] and "certificate" in err["message"]
    assert tls_stub.requests() == []
    lines = gw.error_lines(r"ARK00031: channel sec/\S+: tls failure: "
                           r".*certificate")
    assert lines, gw.error_log()
    entry = gw.access_entries(wait_for=1)[-1]
    assert entry["upstream_fail"] == "tls" and entry["status"] == 502
    assert PROVIDER_SECRET not in gw.all_logs_text()
    assert gw.key not in gw.all_logs_text()
    gw.allow += [r"ARK00031: channel sec/\S+: tls failure",
                 r"ARK00043"]

    # with ArkCACertificateFile the same upstream is verified and used
    gw2 = tls_gateway(make_gateway, tls_stub,
                      'ArkCACertificateFile "%s"\n' % test_ca["ca.pem"])
    st, _, body = post(gw2, {"model": "chat-fast", "messages": MSG})
    assert st == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"] == \
        "tls says: hi"
    assert len(tls_stub.requests()) == 1
    assert tls_stub.requests()[0]["headers"]["authorization"] == \
        "Bearer " + PROVIDER_SECRET


def test_69_08_upstream_host_name_is_verified(make_gateway, make_tls_stub,
                                              test_ca):
    # signed by the trusted CA, but for another host name
    tls_stub = make_tls_stub(test_ca["other.pem"], test_ca["other.key"])
    gw = tls_gateway(make_gateway, tls_stub,
                     'ArkCACertificateFile "%s"\n' % test_ca["ca.pem"])
    st, _, body = post(gw, {"model": "chat-fast", "messages": MSG})
    assert_openai_error(st, body, 502, "upstream_unreachable")
    assert tls_stub.requests() == []
    assert gw.error_lines(r"ARK00031: channel sec/\S+: tls failure"), \
        gw.error_log()
    gw.allow += [r"ARK00031: channel sec/\S+: tls failure", r"ARK00043"]


def test_69_09_ca_file_must_hold_certificates(make_gateway, stub, test_ca):
    gw = make_gateway(ark=openai_provider(stub) + 'ArkCACertificateFile "%s"\n'
                      % test_ca["ca.key"], start=False)
    r = gw.configtest()
    assert r.returncode != 0
    assert "holds no PEM certificate" in r.stderr
    assert "PRIVATE KEY" not in r.stderr


def test_69_10_plaintext_only_when_said_or_loopback(make_gateway, stub):
    gw = make_gateway(ark="ArkProvider far openai http://10.255.255.1/v1\n",
                      start=False)
    r = gw.configtest()
    assert r.returncode != 0
    assert ("ArkProvider far: base URL 'http://10.255.255.1/v1' is plain "
            "http:// to a host that is not loopback: use https://, or add "
            "plaintext=on") in r.stderr
    gw = make_gateway(ark="ArkProvider far openai http://10.255.255.1/v1 "
                          "plaintext=on\n", start=False)
    assert gw.configtest().returncode == 0
    gw = make_gateway(ark="ArkProvider near openai http://localhost:1/v1\n"
                          "ArkProvider near6 openai http://[::1]:1/v1\n",
                      start=False)
    r = gw.configtest()
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------- stream idle

def read_sse(gw, text, timeout=60):
    c = gw.conn(timeout)
    c.request("POST", "/v1/chat/completions",
              body=json.dumps({"model": "chat-fast", "stream": True,
                               "messages": [{"role": "user",
                                             "content": text}]}),
              headers={"Authorization": "Bearer " + gw.key,
                       "Content-Type": "application/json"})
    r = c.getresponse()
    status, raw = r.status, r.read()
    c.close()
    return status, raw


def test_69_11_stream_idle_timeout(make_gateway, stub):
    gw = secure_gateway(make_gateway, stub, ark="ArkStreamIdleTimeout 1s\n")
    # the first event, then 30 s of silence: ended after about 1 s (plus
    # libcurl's averaging window of up to 5 s), well before 30 s
    t0 = time.monotonic()
    status, raw = read_sse(gw, "one two three [[stub:slow:30000]]")
    elapsed = time.monotonic() - t0
    assert status == 200
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])["error"]
    assert err["code"] == "upstream_timeout"
    assert json.loads(events[0])["object"] == "chat.completion.chunk"
    assert elapsed < 15, elapsed
    entry = gw.access_entries(wait_for=1)[-1]
    assert entry["upstream_fail"] == "timeout"
    assert entry["error"] == "upstream_timeout"
    # silence before the first byte: nothing reached the client, so it is
    # a plain 504 (a channel failure like any other timeout)
    t0 = time.monotonic()
    st, _, body = gw.chat(gw.key, "chat-fast", "x [[stub:hang]]",
                          stream=True, timeout=60)
    assert_openai_error(st, body, 504, "upstream_timeout")
    assert time.monotonic() - t0 < 15
    # without a stream the idle limit does not apply (ArkTimeout does)
    st, _, body = gw.chat(gw.key, "chat-fast", "x [[stub:slow_first_byte:"
                          "10000]]", timeout=60)
    assert st == 200, body
    # libcurl's words, or the native client's (ArkUpstreamClient)
    silent = r"(Operation too slow|\S+ sent nothing for \d+ ms)"
    gw.allow += [r"ARK00023: channel stub/\S+: stream interrupted "
                 r"\(timeout: " + silent,
                 r"ARK00031: channel stub/\S+: timeout failure: " + silent,
                 r"ARK00043", r"ARK00036"]
