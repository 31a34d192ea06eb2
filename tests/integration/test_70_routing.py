"""70: routing across channels: failover, circuit breaker, compliance,
hedging, scoring by priority, x-ark-* headers."""
import json
import time

from ark_harness import assert_openai_error, free_port

PROV = ("ArkProvider {name} openai {base}/v1 key=env:ARK_TEST_PROVIDER_KEY "
        "{extra}\n")
MSG = [{"role": "user", "content": "route me"}]


def provider(stub, name, extra=""):
    return PROV.format(name=name, base=stub.base, extra=extra)


def metrics(gw):
    st, _, body = gw.request("GET", "/ark/metrics")
    assert st == 200
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def metric(gw, name, channel):
    for k, v in metrics(gw).items():
        if k.startswith(name + "{") and 'channel="%s"' % channel in k:
            return v
    raise KeyError((name, channel))


METRICS_LOC = """
<Location /ark/metrics>
    SetHandler ark-metrics
</Location>
"""


def two_channel_gateway(make_gateway, a, b, route="strategy=fallback",
                        extra="", key_args=None, allow=(), ark_extra=""):
    ark = (provider(a, "prov-a") + provider(b, "prov-b")
           + "ArkModel m prov-a up-a name=chan-a %s\n"
             "ArkModel m prov-b up-b name=chan-b %s\n"
           % (extra, extra)
           + "ArkRoute m %s\n" % route + ark_extra + METRICS_LOC)
    gw = make_gateway(ark=ark, start=False, allow=allow)
    gw.key = gw.create_key("k", **(key_args or {}))
    gw.start()
    return gw


def test_70_01_failover_on_5xx_both_channels_tried(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(make_gateway, a, b,
                             allow=[r"ARK00036: channel chan-a answered "
                                    r"HTTP 500"])
    a.faults({"kind": "status", "code": 500})
    st, headers, body = gw.chat(gw.key, "m", "hello")
    assert st == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"] == \
        "B says: hello"
    assert headers["x-ark-channel"] == "chan-b"
    assert headers["x-ark-provider"] == "prov-b"
    assert headers["x-ark-attempts"] == "2"
    assert float(headers["x-ark-route-ms"]) >= 0
    # the upstream logs prove both channels were tried, each with its model
    assert [r["body"]["model"] for r in a.requests()] == ["up-a"]
    assert [r["body"]["model"] for r in b.requests()] == ["up-b"]
    assert a.requests()[0]["status"] == 500


def test_70_02_failover_on_transport_failures(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(
        make_gateway, a, b,
        allow=[r"ARK00031: channel chan-a: (io|timeout) failure"],
        extra="")
    for fault in ({"kind": "reset", "times": 2},
                  {"kind": "malformed"}):
        a.faults(fault)
        st, headers, body = gw.chat(gw.key, "m", "x")
        assert st == 200, (fault, body)
        assert headers["x-ark-channel"] == "chan-b"
    gw.allow.append(r"ARK00033: channel chan-a sent a malformed answer")


def test_70_03_unreachable_channel_fails_over(make_gateway, make_stub):
    b = make_stub("B")
    dead = free_port()
    ark = ("ArkProvider dead openai http://127.0.0.1:%d/v1\n" % dead
           + provider(b, "prov-b")
           + "ArkModel m dead up-a name=chan-a\n"
             "ArkModel m prov-b up-b name=chan-b\n"
             "ArkRoute m strategy=fallback\n")
    gw = make_gateway(ark=ark, start=False,
                      allow=[r"ARK00031: channel chan-a: connect failure"])
    key = gw.create_key("k")
    gw.start()
    st, headers, _ = gw.chat(key, "m", "x")
    assert st == 200 and headers["x-ark-channel"] == "chan-b"


def test_70_04_request_errors_are_not_retried(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(make_gateway, a, b)
    a.faults({"kind": "status", "code": 400})
    st, headers, body = gw.chat(gw.key, "m", "x")
    assert_openai_error(st, body, 400, "upstream_rejected_request")
    assert headers["x-ark-attempts"] == "1"
    assert b.requests() == []


def test_70_05_429_retry_after_cools_the_channel(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(make_gateway, a, b,
                             allow=[r"ARK00036: channel chan-a answered "
                                    r"HTTP 429"])
    a.faults({"kind": "status", "code": 429, "retry_after": 2})
    assert gw.chat(gw.key, "m", "x")[1]["x-ark-channel"] == "chan-b"
    # A cools down for its Retry-After: not even tried meanwhile
    for _ in range(3):
        st, headers, _ = gw.chat(gw.key, "m", "x")
        assert st == 200 and headers["x-ark-attempts"] == "1"
        assert headers["x-ark-channel"] == "chan-b"
    assert len(a.requests()) == 1
    time.sleep(2.2)
    assert gw.chat(gw.key, "m", "x")[1]["x-ark-channel"] == "chan-a"
    # a 429 does not count against the breaker
    assert metric(gw, "ark_channel_circuit_state", "chan-a") == 0


def test_70_06_circuit_opens_and_half_open_probe_restores(make_gateway,
                                                         make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(
        make_gateway, a, b,
        ark_extra="ArkCircuit failures=3 cooldown=1500ms\n",
        allow=[r"ARK00036: channel chan-a answered HTTP 500"])
    a.faults({"kind": "status", "code": 500, "times": -1})
    for _ in range(3):
        assert gw.chat(gw.key, "m", "x")[0] == 200
    assert len(a.requests()) == 3
    assert metric(gw, "ark_channel_circuit_state", "chan-a") == 1
    assert metric(gw, "ark_channel_circuit_opens_total", "chan-a") == 1
    # open: traffic stops going to A
    for _ in range(5):
        st, headers, _ = gw.chat(gw.key, "m", "x")
        assert st == 200 and headers["x-ark-attempts"] == "1"
    assert len(a.requests()) == 3
    # A recovers; after the cool-down one probe goes through and closes it
    a.control("DELETE", "/_stub/faults")
    time.sleep(1.7)
    st, headers, _ = gw.chat(gw.key, "m", "x")
    assert headers["x-ark-channel"] == "chan-a"
    assert metric(gw, "ark_channel_circuit_state", "chan-a") == 0
    for _ in range(3):
        assert gw.chat(gw.key, "m", "x")[1]["x-ark-channel"] == "chan-a"


def test_70_07_failed_probe_reopens(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(
        make_gateway, a, b,
        ark_extra="ArkCircuit failures=2 cooldown=1s\n",
        allow=[r"ARK00036: channel chan-a answered HTTP 500"])
    a.faults({"kind": "status", "code": 500, "times": -1})
    for _ in range(2):
        gw.chat(gw.key, "m", "x")
    time.sleep(1.2)
    st, headers, _ = gw.chat(gw.key, "m", "x")     # the probe fails over
    assert st == 200 and headers["x-ark-attempts"] == "2"
    assert len(a.requests()) == 3
    assert metric(gw, "ark_channel_circuit_state", "chan-a") == 1
    gw.chat(gw.key, "m", "x")
    assert len(a.requests()) == 3                  # open again


def test_70_08_compliance_filtered_channel_never_called(make_gateway,
                                                       make_stub):
    us, eu = make_stub("US"), make_stub("EU")
    ark = (provider(us, "prov-us", "tags=region=us")
           + provider(eu, "prov-eu", "tags=region=eu")
           + "ArkModel m prov-us up-us name=chan-us\n"
             "ArkModel m prov-eu up-eu name=chan-eu\n"
             "ArkRoute m strategy=fallback\n")
    gw = make_gateway(ark=ark, start=False,
                      allow=[r"ARK00036: channel chan-eu answered HTTP 500",
                             r"ARK00043: model m: no usable channel"])
    eu_key = gw.create_key("eu-only", tags="region=eu")
    any_key = gw.create_key("anywhere")
    gw.start()
    st, headers, _ = gw.chat(eu_key, "m", "x")
    assert st == 200 and headers["x-ark-channel"] == "chan-eu"
    eu.faults({"kind": "status", "code": 500, "times": -1})
    st, headers, body = gw.chat(eu_key, "m", "x")
    err = assert_openai_error(st, body, 503, "no_compliant_channel_available")
    assert "compliance" in err["message"]
    assert us.requests() == []                     # never, whatever happens
    # a key without requirements may use the US channel
    assert gw.chat(any_key, "m", "x")[1]["x-ark-channel"] == "chan-us"
    # a key whose requirements no channel meets
    gw2_key = gw.create_key("cn-only", tags="region=cn")
    gw.graceful()
    st, _, body = gw.chat(gw2_key, "m", "x")
    assert_openai_error(st, body, 503, "no_compliant_channel")
    assert len(us.requests()) == 1


def test_70_09_hedge_returns_faster_and_cancels_slower(make_gateway,
                                                      make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(make_gateway, a, b,
                             route="strategy=fallback hedge=300ms")
    a.config(first_byte_delay_ms=4000)
    t0 = time.monotonic()
    st, headers, body = gw.chat(gw.key, "m", "race")
    elapsed = time.monotonic() - t0
    assert st == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == \
        "B says: race"
    assert elapsed < 2.0, elapsed
    assert headers["x-ark-attempts"] == "2"
    assert headers["x-ark-channel"] == "chan-b"
    deadline = time.time() + 3
    while time.time() < deadline and a.requests()[0]["outcome"] is None:
        time.sleep(0.05)
    assert a.requests()[0]["outcome"] == "client_gone"   # cancelled
    assert metric(gw, "ark_channel_hedges_total", "chan-b") == 1
    assert metric(gw, "ark_channel_hedges_total", "chan-a") == 0


def test_70_10_hedged_stream(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(make_gateway, a, b,
                             route="strategy=fallback hedge=300ms")
    a.config(first_byte_delay_ms=4000)
    st, headers, body = gw.chat(gw.key, "m", "streamed race", stream=True)
    assert st == 200 and headers["x-ark-channel"] == "chan-b"
    text = "".join(
        (json.loads(block[6:])["choices"] or [{"delta": {}}])[0]["delta"]
        .get("content") or ""
        for block in body.decode().split("\n\n")
        if block.startswith("data: {"))
    assert text == "B says: streamed race"
    assert body.decode().rstrip().endswith("data: [DONE]")


def test_70_11_score_picks_cheap_for_low_and_fast_for_high(make_gateway,
                                                          make_stub):
    cheap, fast = make_stub("cheap"), make_stub("fast")
    cheap.config(first_byte_delay_ms=400)
    ark = (provider(cheap, "prov-cheap") + provider(fast, "prov-fast")
           + "ArkModel m prov-cheap up-c name=chan-cheap price=0.10/0.40\n"
             "ArkModel m prov-fast up-f name=chan-fast price=5/15\n")
    gw = make_gateway(ark=ark, start=False, location="")
    # a second location measures both channels (random by weight)
    gw.ark += ("<Location /warm/v1>\n  SetHandler ark-gateway\n"
               "  ArkRoute * strategy=weighted\n</Location>\n")
    low = gw.create_key("batch", priority="low")
    high = gw.create_key("interactive", priority="high")
    gw.start()
    for _ in range(24):
        gw.request("POST", "/warm/v1/chat/completions",
                   {"model": "m", "messages": MSG}, high)
    assert cheap.requests() and fast.requests()
    for _ in range(3):
        st, h, _ = gw.chat(low, "m", "x")
        assert st == 200 and h["x-ark-channel"] == "chan-cheap"
        st, h, _ = gw.chat(high, "m", "x")
        assert st == 200 and h["x-ark-channel"] == "chan-fast"
    # a request may lower its priority, never raise it
    st, h, _ = gw.request("POST", "/v1/chat/completions",
                          {"model": "m", "messages": MSG}, high,
                          headers={"x-ark-priority": "low"})
    assert h["x-ark-channel"] == "chan-cheap"
    st, h, _ = gw.request("POST", "/v1/chat/completions",
                          {"model": "m", "messages": MSG}, low,
                          headers={"x-ark-priority": "high"})
    assert h["x-ark-channel"] == "chan-cheap"
    st, _, body = gw.request("POST", "/v1/chat/completions",
                             {"model": "m", "messages": MSG}, low,
                             headers={"x-ark-priority": "urgent"})
    assert_openai_error(st, body, 400, "invalid_priority")


def test_70_12_all_channels_down_gives_last_error(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    gw = two_channel_gateway(make_gateway, a, b,
                             allow=[r"ARK00036: channel chan-[ab] answered"])
    a.faults({"kind": "status", "code": 500})
    b.faults({"kind": "status", "code": 503})
    st, headers, body = gw.chat(gw.key, "m", "x")
    assert_openai_error(st, body, 502, "upstream_error")
    assert headers["x-ark-attempts"] == "2"
    assert len(a.requests()) == 1 and len(b.requests()) == 1


def test_70_13_weighted_strategy_spreads_by_weight(make_gateway, make_stub):
    a, b = make_stub("A"), make_stub("B")
    ark = (provider(a, "prov-a") + provider(b, "prov-b")
           + "ArkModel m prov-a up-a name=chan-a weight=3\n"
             "ArkModel m prov-b up-b name=chan-b weight=1\n"
             "ArkRoute m strategy=weighted\n")
    gw = make_gateway(ark=ark, start=False)
    key = gw.create_key("k")
    gw.start()
    for _ in range(80):
        assert gw.chat(key, "m", "x")[0] == 200
    na, nb = len(a.requests()), len(b.requests())
    assert na + nb == 80
    assert 45 <= na <= 75, (na, nb)      # 3:1 expected 60:20


def test_70_14_route_policy_in_virtual_host(make_gateway, make_stub):
    """ArkRoute inside a <VirtualHost> but outside any <Location> applies
    to that host's requests (and only to them)."""
    import http.client
    a, b = make_stub("A"), make_stub("B")
    vport = free_port()
    vhost = ("Listen 127.0.0.1:%d\n<VirtualHost 127.0.0.1:%d>\n"
             "    ArkRoute m attempts=1\n</VirtualHost>\n" % (vport, vport))
    gw = two_channel_gateway(make_gateway, a, b, ark_extra=vhost,
                             allow=[r"ARK00036: channel chan-a answered "
                                    r"HTTP 500"])
    a.faults({"kind": "status", "code": 500, "times": -1})
    st, headers, body = gw.chat(gw.key, "m", "main host")
    assert st == 200, body
    assert headers["x-ark-attempts"] == "2"
    c = http.client.HTTPConnection("127.0.0.1", vport, timeout=30)
    c.request("POST", "/v1/chat/completions",
              json.dumps({"model": "m", "messages": MSG}),
              {"Authorization": "Bearer " + gw.key,
               "Content-Type": "application/json"})
    r = c.getresponse()
    vbody = r.read()
    assert r.status == 502, vbody
    assert_openai_error(r.status, vbody, 502)
    assert r.getheader("x-ark-attempts") == "1"
    assert len(b.requests()) == 1      # only the main host's failover
