"""40: upstream keep-alive, concurrency and client disconnects."""
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def test_40_01_upstream_connections_are_reused(gateway, stub):
    n = 30
    for i in range(n):
        st, _, _ = gateway.chat(gateway.key, "chat-fast", "req %d" % i)
        assert st == 200
    reqs = stub.requests()
    assert len(reqs) == n
    conns = {r["conn_id"] for r in reqs}
    # sequential requests from any worker thread share kept-alive
    # upstream connections instead of one connection per request
    assert len(conns) <= 2, conns
    log = gateway.access_entries(wait_for=n)
    reused = sum(1 for e in log if e["upstream_conn_reused"])
    assert reused >= n - 2, [e["upstream_conn_reused"] for e in log]


def test_40_02_fifty_concurrent_requests_each_get_their_answer(gateway,
                                                               stub):
    stub.config(first_byte_delay_ms=1000)  # make them overlap for real

    def one(i):
        token = "token-%03d-%s" % (i, "x" * (i % 7))
        stream = bool(i % 2)
        st, _, body = gateway.chat(gateway.key, "chat-fast", token,
                                   stream=stream, timeout=60)
        return i, token, stream, st, body

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    for i, token, stream, st, body in results:
        assert st == 200, (i, body)
        if stream:
            text = ""
            for block in body.decode().split("\n\n"):
                if block.startswith("data: {"):
                    for ch in json.loads(block[6:])["choices"]:
                        text += ch["delta"].get("content") or ""
        else:
            text = json.loads(body)["choices"][0]["message"]["content"]
        assert text == "stub says: " + token, (i, text)
    reqs = stub.requests()
    assert len(reqs) == 50
    starts = sorted(r["t_start"] for r in reqs)
    ends = sorted(r["t_end"] for r in reqs)
    # really concurrent: most requests were in flight at the same time
    assert starts[40] < ends[10]


def test_40_03_client_disconnect_aborts_upstream(gateway, stub):
    stub.config(chunk_delay_ms=400)
    body = json.dumps({"model": "chat-fast", "stream": True,
                       "messages": [{"role": "user", "content":
                                     " ".join(["w"] * 40)}]})
    s = socket.create_connection(("127.0.0.1", gateway.port), 10)
    s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\nContent-Type: application/json"
               "\r\nContent-Length: %d\r\n\r\n%s"
               % (gateway.key, len(body), body)).encode())
    got = b""
    while b"data: {" not in got:
        got += s.recv(4096)
    assert b" 200 " in got.split(b"\r\n")[0]
    s.close()                           # the client goes away mid-stream
    t_close = time.time()
    deadline = t_close + 5
    outcome = None
    while time.time() < deadline:
        reqs = stub.requests()
        outcome = reqs[0]["outcome"]
        if outcome is not None:
            break
        time.sleep(0.1)
    # the upstream transfer was cut long before its 40 x 400 ms
    assert outcome == "client_gone", reqs[0]
    assert reqs[0]["t_end"] - t_close < 3
    log = gateway.access_entries(wait_for=1)
    assert log[0]["client_aborted"] is True
    assert log[0]["status"] == 200


def _client_gateway(make_gateway, stub, client):
    gw = make_gateway(
        ark="ArkUpstreamClient %s\n" % client
            + "ArkProvider stub openai %s/v1 key=env:ARK_TEST_PROVIDER_KEY\n"
            % stub.base + "ArkModel m stub gpt-4o-mini-2024-07-18\n",
        start=False,
        allow=[r"ARK000\d\d: channel stub/\S+"])
    key = gw.create_key("k")
    gw.start()
    return gw, key


def test_40_04_native_and_curl_clients_answer_alike(make_gateway, stub):
    """ArkUpstreamClient native (the default) and curl: same answers,
    same streams, same error mapping, connections reused by both."""
    seen = {}
    for client in ("native", "curl"):
        stub.control("POST", "/_stub/reset")
        gw, key = _client_gateway(make_gateway, stub, client)
        out = []
        st, _, body = gw.chat(key, "m", "hello")
        out.append((st, json.loads(body)["choices"][0]["message"]["content"]))
        st, _, body = gw.chat(key, "m", "a b c", stream=True)
        text = ""
        for block in body.decode().split("\n\n"):
            if block.startswith("data: {"):
                for ch in json.loads(block[6:])["choices"]:
                    text += ch["delta"].get("content") or ""
        out.append((st, text))
        for i in range(5):
            assert gw.chat(key, "m", "again %d" % i)[0] == 200
        stub.faults({"kind": "reset", "times": 2})
        st, _, body = gw.chat(key, "m", "y")
        out.append((st, json.loads(body)["error"]["code"]))
        # last: the channel then cools down for the Retry-After
        stub.faults({"kind": "status", "code": 429, "retry_after": "7"})
        st, hdrs, body = gw.chat(key, "m", "x")
        out.append((st, json.loads(body)["error"]["code"],
                    hdrs.get("retry-after")))
        log = gw.access_entries(wait_for=9)
        out.append(sum(1 for e in log[2:7] if e["upstream_conn_reused"]) >= 4)
        seen[client] = out
        gw.stop()
    assert seen["native"] == seen["curl"], seen
    assert seen["native"][0] == (200, "stub says: hello")
    assert seen["native"][1] == (200, "stub says: a b c")


def test_40_05_upstream_client_directive_is_checked(make_gateway):
    gw = make_gateway(ark="ArkUpstreamClient fast\n", start=False)
    r = gw.configtest()
    assert r.returncode != 0
    assert "ArkUpstreamClient: 'fast' is not native or curl" in r.stderr
