"""69: tracing: W3C traceparent in and out (client, providers, ark-cached),
x-ark-trace-id on every response, trace_id in the access log, and the
OTLP/HTTP JSON export of one SERVER span per request and one CLIENT span
per upstream attempt (ArkTraceExport) to a collector run by the test."""
import http.server
import json
import re
import threading
import time

from conftest import PROVIDER_SECRET, openai_provider

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
CLIENT_TP = "00-%s-%s-01" % (TRACE, PARENT)
TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
MSG = [{"role": "user", "content": "trace me"}]


def parse_tp(value):
    m = TP_RE.match(value or "")
    assert m, value
    assert m.group(1) != "0" * 32 and m.group(2) != "0" * 16
    return m.group(1), m.group(2), m.group(3)


class Collector:
    """A minimal OTLP/HTTP collector: records every POST body."""

    def __init__(self, status=200):
        self.posts = []
        self.status = status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.posts.append({"path": self.path,
                                    "type": self.headers.get("Content-Type"),
                                    "body": body})
                reply = b"{}"
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/v1/traces" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def spans(self):
        out = []
        for post in list(self.posts):
            doc = json.loads(post["body"])
            for rs in doc["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    out += ss["spans"]
        return out

    def wait_spans(self, n, timeout=8):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.spans()) >= n:
                return self.spans()
            time.sleep(0.1)
        return self.spans()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = next(iter(v.values()))
    return out


def two_stub_gateway(make_gateway, a, b, ark_extra="", allow=()):
    ark = (openai_provider(a, "prov-a") + openai_provider(b, "prov-b")
           + "ArkModel m prov-a up-a name=chan-a\n"
             "ArkModel m prov-b up-b name=chan-b\n"
             "ArkRoute m strategy=fallback\n" + ark_extra)
    gw = make_gateway(ark=ark, start=False,
                      allow=[r"ARK00036: channel chan-a answered HTTP 500"]
                      + list(allow))
    gw.key = gw.create_key("k", tenant="acme")
    gw.start()
    return gw


def test_69_01_client_trace_goes_to_every_attempt(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_stub_gateway(make_gateway, a, b)
    a.faults({"kind": "status", "code": 500})
    st, h, body = gw.request(
        "POST", "/v1/chat/completions", {"model": "m", "messages": MSG},
        gw.key, headers={"traceparent": CLIENT_TP,
                         "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcW"})
    assert st == 200, body
    assert h["x-ark-attempts"] == "2"
    assert h["x-ark-trace-id"] == TRACE
    tid, server_span, flags = parse_tp(h["traceparent"])
    assert tid == TRACE and flags == "01"
    assert server_span != PARENT
    # one traceparent per attempt: same trace, a new span each time
    seen = []
    for stub in (a, b):
        reqs = stub.requests()
        assert len(reqs) == 1
        hdrs = reqs[0]["headers"]
        tid, span, flags = parse_tp(hdrs["traceparent"])
        assert tid == TRACE and flags == "01"
        assert span not in (PARENT, server_span)
        assert hdrs["tracestate"] == "rojo=00f067aa0ba902b7,congo=t61rcW"
        seen.append(span)
    assert seen[0] != seen[1]
    entry = gw.access_entries(wait_for=1)[-1]
    assert entry["trace_id"] == TRACE


def test_69_02_new_trace_when_absent_or_invalid(gateway, stub):
    bad = [
        None,
        "00-%s-%s-01" % (TRACE.upper(), PARENT),        # upper case
        "00-%s-%s-01" % ("0" * 32, PARENT),             # zero trace id
        "00-%s-%s-01" % (TRACE, "0" * 16),              # zero parent id
        "ff-%s-%s-01" % (TRACE, PARENT),                # version ff
        "00-%s-%s-01-extra" % (TRACE, PARENT),          # v00 too long
        "garbage",
    ]
    ids = set()
    for i, tp in enumerate(bad):
        headers = {"tracestate": "rojo=1"}
        if tp is not None:
            headers["traceparent"] = tp
        st, h, body = gateway.request(
            "POST", "/v1/chat/completions",
            {"model": "chat-fast", "messages": MSG}, gateway.key,
            headers=headers)
        assert st == 200, body
        tid = h["x-ark-trace-id"]
        assert re.match(r"^[0-9a-f]{32}$", tid) and tid != "0" * 32
        assert tid != TRACE and tid.lower() != TRACE
        assert parse_tp(h["traceparent"])[0] == tid
        up = stub.requests()[-1]["headers"]
        assert parse_tp(up["traceparent"])[0] == tid
        assert up["traceparent"] != tp
        # a tracestate is never passed on without a valid traceparent
        assert "tracestate" not in up
        ids.add(tid)
    assert len(ids) == len(bad)                    # a new trace each time
    log = gateway.access_entries(wait_for=len(bad))
    assert {e["trace_id"] for e in log[-len(bad):]} == ids


def test_69_03_errors_carry_the_trace_id(gateway):
    cases = [
        ("POST", "/v1/chat/completions", {"model": "chat-fast",
                                          "messages": MSG}, None, 401),
        ("POST", "/v1/chat/completions", {"model": "nope",
                                          "messages": MSG}, gateway.key, 404),
        ("GET", "/v1/chat/completions", None, gateway.key, 405),
        ("POST", "/v1/chat/completions", "{not json", gateway.key, 400),
        ("GET", "/v1/nowhere", None, gateway.key, 404),
        ("GET", "/v1/models", None, gateway.key, 200),
    ]
    for method, path, body, key, want in cases:
        st, h, _ = gateway.request(method, path, body, key,
                                   headers={"traceparent": CLIENT_TP})
        assert st == want, (path, st)
        assert h["x-ark-trace-id"] == TRACE, (path, h)
        assert parse_tp(h["traceparent"])[0] == TRACE
    log = gateway.access_entries(wait_for=len(cases))
    assert all(e["trace_id"] == TRACE for e in log)


def test_69_04_otlp_export(make_gateway, make_stub):
    col = Collector()
    try:
        a, b = make_stub("A"), make_stub("B")
        gw = two_stub_gateway(make_gateway, a, b,
                              ark_extra="ArkTraceExport %s timeout=2s "
                                        "batch=64\n" % col.url)
        a.faults({"kind": "status", "code": 500})
        # 1: continued trace, failover: SERVER + 2 CLIENT spans
        st, h1, _ = gw.request("POST", "/v1/chat/completions",
                               {"model": "m", "messages": MSG}, gw.key,
                               headers={"traceparent": CLIENT_TP})
        assert st == 200 and h1["x-ark-attempts"] == "2"
        # 2: new trace, streamed, one attempt: SERVER + 1 CLIENT
        st, h2, _ = gw.request("POST", "/v1/chat/completions",
                               {"model": "m", "messages": MSG,
                                "stream": True}, gw.key)
        assert st == 200
        # 3: refused before any upstream: SERVER only, status 401
        st, h3, _ = gw.request("POST", "/v1/chat/completions",
                               {"model": "m", "messages": MSG}, "sk-wrong")
        assert st == 401
        # 4: the client says "not sampled": nothing exported
        st, h4, _ = gw.request(
            "POST", "/v1/chat/completions", {"model": "m", "messages": MSG},
            gw.key, headers={"traceparent": "00-%s-%s-00" % ("1" * 32,
                                                              PARENT)})
        assert st == 200 and h4["x-ark-trace-id"] == "1" * 32
        spans = col.wait_spans(6)
        time.sleep(1.5)                       # nothing else may come
        spans = col.spans()
        assert len(spans) == 6, json.dumps(spans, indent=1)
        for post in col.posts:
            assert post["path"] == "/v1/traces"
            assert post["type"] == "application/json"
            doc = json.loads(post["body"])
            res = {x["key"]: x["value"]["stringValue"] for x in
                   doc["resourceSpans"][0]["resource"]["attributes"]}
            assert res["service.name"] == "ark" and res["host.name"]
            assert doc["resourceSpans"][0]["scopeSpans"][0]["scope"][
                "name"] == "mod_ark"
            # never a secret: neither the provider's key nor the client's
            assert PROVIDER_SECRET.encode() not in post["body"]
            assert gw.key.encode() not in post["body"]
            assert b"trace me" not in post["body"]      # nor a body
        assert all(s["traceId"] != "1" * 32 for s in spans)
        servers = {s["traceId"]: s for s in spans if s["kind"] == 2}
        clients = [s for s in spans if s["kind"] == 3]
        assert len(servers) == 3 and len(clients) == 3

        # request 1: parent is the client's span; two attempts below ours
        s1 = servers[TRACE]
        _, span1, _ = parse_tp(h1["traceparent"])
        assert s1["spanId"] == span1 and s1["parentSpanId"] == PARENT
        a1 = attrs(s1)
        assert a1["http.response.status_code"] == "200"
        assert a1["ark.model"] == "m" and a1["ark.attempts"] == "2"
        assert a1["ark.channel"] == "chan-b"
        assert int(s1["endTimeUnixNano"]) >= int(s1["startTimeUnixNano"])
        c1 = sorted((c for c in clients if c["traceId"] == TRACE),
                    key=lambda c: attrs(c)["ark.attempt"])
        assert len(c1) == 2
        assert all(c["parentSpanId"] == span1 for c in c1)
        assert [attrs(c)["ark.channel"] for c in c1] == ["chan-a", "chan-b"]
        assert attrs(c1[0])["http.response.status_code"] == "500"
        assert c1[0]["status"]["code"] == 2            # ERROR
        assert attrs(c1[0])["ark.outcome"] == "failure"
        assert "status" not in c1[1]
        assert attrs(c1[1])["ark.outcome"] == "success"
        assert int(attrs(c1[1])["gen_ai.usage.output_tokens"]) > 0
        # the span ids are the ones the providers were given
        got = {parse_tp(r["headers"]["traceparent"])[1]
               for r in a.requests() + b.requests()
               if TRACE in r["headers"]["traceparent"]}
        assert got == {c["spanId"] for c in c1}

        # request 2: a root span of its own with one attempt
        t2 = h2["x-ark-trace-id"]
        s2 = servers[t2]
        assert "parentSpanId" not in s2
        assert attrs(s2)["ark.stream"] is True
        c2 = [c for c in clients if c["traceId"] == t2]
        assert len(c2) == 1 and c2[0]["parentSpanId"] == s2["spanId"]
        got = [parse_tp(r["headers"]["traceparent"])[1]
               for r in a.requests() + b.requests()
               if t2 in r["headers"]["traceparent"]]
        assert got == [c2[0]["spanId"]]

        # request 3: refused, no attempt
        s3 = servers[h3["x-ark-trace-id"]]
        assert attrs(s3)["http.response.status_code"] == "401"
        assert attrs(s3)["ark.error"] == "invalid_api_key"
        assert attrs(s3)["ark.attempts"] == "0"
    finally:
        col.stop()


def test_69_05_export_failures_never_slow_requests(make_gateway, stub):
    col = Collector(status=503)
    try:
        ark = (openai_provider(stub) + "ArkModel m stub up\n"
               + "ArkTraceExport %s timeout=300ms batch=1\n" % col.url)
        gw = make_gateway(ark=ark, start=False,
                          allow=[r"ARK00090: trace export to http://"])
        gw.key = gw.create_key("k")
        gw.start()
        t0 = time.time()
        for i in range(4):
            st, h, _ = gw.request("POST", "/v1/chat/completions",
                                  {"model": "m", "messages": MSG}, gw.key)
            assert st == 200
        assert time.time() - t0 < 2.0
        deadline = time.time() + 5
        while time.time() < deadline and len(col.posts) < 8:
            time.sleep(0.1)
        assert len(col.posts) >= 8          # one span per POST (batch=1)
        time.sleep(0.3)
        lines = gw.error_lines(r"ARK00090")
        assert len(lines) == 1, lines        # logged once a minute
        assert "HTTP 503" in lines[0]
    finally:
        col.stop()


def test_69_06_cache_gets_the_trace(make_gateway, stub, redis_server,
                                    make_cached):
    cached = make_cached(redis_server, args=["--loglevel", "debug"])
    ark = (openai_provider(stub) + "ArkModel m stub gpt-4o-mini\n"
           + "ArkCacheServer 127.0.0.1:%d\n" % cached.port
           + "ArkCacheTimeout connect=200ms call=2s\n")
    gw = make_gateway(ark=ark, location="ArkCache on", start=False)
    gw.key = gw.create_key("k", tenant="acme")
    gw.start()
    body = {"model": "m", "temperature": 0,
            "messages": [{"role": "user", "content": "Capital of Peru?"}]}
    st, h, _ = gw.request("POST", "/v1/chat/completions", body, gw.key,
                          headers={"traceparent": CLIENT_TP})
    assert st == 200 and h["x-ark-cache"] == "miss"
    time.sleep(0.3)                          # the store follows the answer
    other = "00-%s-%s-01" % ("ab" * 16, PARENT)
    st, h, _ = gw.request("POST", "/v1/chat/completions", body, gw.key,
                          headers={"traceparent": other})
    assert st == 200 and h["x-ark-cache"] == "hit"
    assert h["x-ark-trace-id"] == "ab" * 16
    deadline = time.time() + 3
    while time.time() < deadline:
        with open(cached.log) as f:
            log = f.read()
        if "trace %s: ARK.LOOKUP hit" % ("ab" * 16) in log:
            break
        time.sleep(0.1)
    assert "ACD00061: trace %s: ARK.LOOKUP miss" % TRACE in log, log
    assert "ACD00062: trace %s: ARK.STORE entry" % TRACE in log, log
    assert "ACD00061: trace %s: ARK.LOOKUP hit" % ("ab" * 16) in log, log
    # old clients (no TRACE) still work, and a bad TRACE is ignored
    assert cached.cli("ARK.LOOKUP", "ns", "x").strip() == ""
    assert cached.cli("ARK.LOOKUP", "ns", "x", "TRACE", "bogus",
                      "THRESHOLD", "0.9").strip() == ""
    assert "syntax error" in cached.cli("ARK.LOOKUP", "ns", "x", "TRACE",
                                        CLIENT_TP, "TRACE", CLIENT_TP)
    assert "syntax error" in cached.cli("ARK.STORE", "ns", "x", "p",
                                        "TTL", "5", "COLOUR", "blue")
