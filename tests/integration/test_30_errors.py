"""30: every refusal and failure in the OpenAI error shape, right status."""
import json
import os
import socket

from ark_harness import assert_openai_error, free_port
from conftest import PROVIDER_SECRET, openai_provider

MSG = [{"role": "user", "content": "hi"}]


def post(gw, body, key=None, headers=None):
    return gw.request("POST", "/v1/chat/completions", body, key,
                      headers=headers)


def test_30_01_401_missing_unknown_revoked(gateway, stub):
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG})
    assert_openai_error(st, body, 401, "missing_api_key")
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_openai_error(st, body, 401, "missing_api_key")
    bogus = "sk-ark-" + "A" * 43
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       key=bogus)
    err = assert_openai_error(st, body, 401, "invalid_api_key")
    assert "AAAA" not in err["message"]     # never echo the key
    assert err["type"] == "authentication_error"

    gateway.create_key("to-revoke")
    revoked = gateway.create_key("to-revoke-2")
    from ark_harness import ark_keys
    ark_keys("revoke", "-f", gateway.keys_file, "to-revoke-2")
    gateway.graceful()
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       key=revoked)
    assert_openai_error(st, body, 401, "revoked_api_key")
    assert stub.requests() == []


def test_30_02_403_model_not_allowed(gateway, stub):
    narrow = gateway.create_key("narrow", models="chat-big")
    gateway.graceful()
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       key=narrow)
    err = assert_openai_error(st, body, 403, "model_not_allowed")
    assert err["param"] == "model"
    assert stub.requests() == []


def test_30_03_400_malformed_and_missing(gateway, stub):
    cases = [
        ('{"model": "chat-fast", "messages": [', "invalid_json", None),
        ('[1, 2]', "invalid_json", None),
        ('', "invalid_json", None),
        ({"messages": MSG}, "missing_required_parameter", "model"),
        ({"model": 7, "messages": MSG}, "invalid_type", "model"),
        ({"model": "chat-fast"}, "missing_required_parameter", "messages"),
        ({"model": "chat-fast", "messages": []}, "empty_array", "messages"),
        ({"model": "chat-fast", "messages": [{"content": "x"}]},
         "missing_required_parameter", "messages[0].role"),
        ({"model": "chat-fast", "messages": [{"role": "wizard",
                                              "content": "x"}]},
         "invalid_value", "messages[0].role"),
        ({"model": "chat-fast", "messages": MSG, "stream": "yes"},
         "invalid_type", "stream"),
        ({"model": "chat-fast", "messages": MSG,
          "stream_options": {"include_usage": True}},
         "invalid_value", "stream_options"),
        ('{"model": "chat-fast", "model": "chat-big", "messages": []}',
         "invalid_json", None),
    ]
    for body, code, param in cases:
        st, _, out = post(gateway, body, key=gateway.key)
        err = assert_openai_error(st, out, 400, code)
        assert err["param"] == param, (body, err)
        assert err["type"] == "invalid_request_error"
    st, _, out = post(gateway, '{"model": "chat-fast", "messages": [',
                      key=gateway.key)
    assert "line 1" in json.loads(out)["error"]["message"]
    assert stub.requests() == []


def test_30_04_404_unknown_model_and_url(gateway, stub):
    st, _, body = post(gateway, {"model": "gpt-99", "messages": MSG},
                       key=gateway.key)
    err = assert_openai_error(st, body, 404, "model_not_found")
    assert "gpt-99" in err["message"]
    st, _, body = gateway.request("POST", "/v1/nothing/here", {},
                                  key=gateway.key)
    assert_openai_error(st, body, 404, "unknown_url")
    st, headers, body = gateway.request("GET", "/v1/chat/completions",
                                        key=gateway.key)
    assert_openai_error(st, body, 405, "method_not_allowed")
    assert headers["allow"] == "POST"
    assert stub.requests() == []


def test_30_05_413_body_too_large(make_gateway, stub):
    gw = make_gateway(ark=openai_provider(stub) + "ArkModel m stub\n",
                      location="ArkMaxBodySize 2K", start=False)
    key = gw.create_key("k")
    gw.start()
    big = {"model": "m", "messages": [{"role": "user",
                                       "content": "x" * 5000}]}
    st, _, body = post(gw, big, key=key)
    assert_openai_error(st, body, 413, "request_too_large")
    # chunked upload without Content-Length is bounded too
    c = gw.conn()
    c.putrequest("POST", "/v1/chat/completions")
    c.putheader("Authorization", "Bearer " + key)
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    data = json.dumps(big).encode()
    for i in range(0, len(data), 1000):
        part = data[i:i + 1000]
        c.send(b"%x\r\n%s\r\n" % (len(part), part))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    assert_openai_error(r.status, r.read(), 413, "request_too_large")
    c.close()
    st, _, _ = post(gw, {"model": "m", "messages": MSG}, key=key)
    assert st == 200
    assert len(stub.requests()) == 1


def test_30_06_502_unreachable(make_gateway):
    port = free_port()      # nothing listens there
    gw = make_gateway(ark="ArkProvider down openai http://127.0.0.1:%d/v1 "
                          "key=env:ARK_TEST_PROVIDER_KEY\n"
                          "ArkModel m down\n" % port, start=False,
                      allow=[r"ARK00031: channel down/\S+: connect failure"])
    key = gw.create_key("k")
    gw.start()
    st, _, body = post(gw, {"model": "m", "messages": MSG}, key=key)
    err = assert_openai_error(st, body, 502, "upstream_unreachable")
    assert str(port) not in err["message"]      # no internals leak


def test_30_07_502_malformed_and_reset(gateway, stub):
    stub.faults({"kind": "malformed"})
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       key=gateway.key)
    assert_openai_error(st, body, 502, "upstream_malformed")
    # a reset on a kept-alive connection before any answer byte is
    # retried once (by the native client, or libcurl) on a fresh
    # connection; a reset of that one too is a failure
    before = len(stub.requests())
    stub.faults({"kind": "reset", "times": 2})
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       key=gateway.key)
    assert_openai_error(st, body, 502, "upstream_connection_error")
    resets = stub.requests()[before:]
    assert [r["fault"] for r in resets] == ["reset", "reset"]
    gateway.allow += [r"ARK00033: channel stub/\S+ sent a malformed answer",
                      r"ARK00031: channel stub/\S+: io failure"]


def test_30_08_504_timeout(make_gateway, stub):
    gw = make_gateway(ark=openai_provider(stub, extra="timeout=1s")
                      + "ArkModel m stub\n", start=False,
                      allow=[r"ARK00031: channel stub/\S+: timeout failure"])
    key = gw.create_key("k")
    gw.start()
    stub.faults({"kind": "slow_first_byte", "ms": 3000})
    st, _, body = post(gw, {"model": "m", "messages": MSG}, key=key)
    assert_openai_error(st, body, 504, "upstream_timeout")
    assert gw.access_entries(wait_for=1)[0]["status"] == 504


def test_30_09_upstream_errors_never_leak_provider_secret(gateway, stub):
    # the provider rejects the gateway's key: its message (which quotes
    # part of the key, as OpenAI's does) must not reach the client
    stub.faults({"kind": "status", "code": 401})
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       key=gateway.key)
    assert_openai_error(st, body, 502, "upstream_auth_failed")
    assert PROVIDER_SECRET[-4:] not in body.decode()
    stub.faults({"kind": "status", "code": 500})
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       key=gateway.key)
    assert_openai_error(st, body, 502, "upstream_error")
    stub.faults({"kind": "status", "code": 400})
    st, _, body = post(gateway, {"model": "chat-fast", "messages": MSG},
                       key=gateway.key)
    assert_openai_error(st, body, 400, "upstream_rejected_request")
    assert PROVIDER_SECRET not in gateway.all_logs_text()
    gateway.allow += [r"ARK00034: channel stub/\S+: provider stub rejected the gateway's",
                      r"ARK00036: channel stub/\S+ answered HTTP 500"]


def test_30_10_config_errors_are_caught_by_configtest(make_gateway, stub):
    gw = make_gateway(ark="ArkProvider p openai http://127.0.0.1:1/v1 "
                          "key=env:ARK_NOT_SET_ANYWHERE\n", start=False)
    r = gw.configtest()
    assert r.returncode != 0
    assert "ARK_NOT_SET_ANYWHERE is not set" in r.stderr
    gw2 = make_gateway(ark="ArkProvider p bedrock http://x/v1\n",
                       start=False)
    r = gw2.configtest()
    assert r.returncode != 0 and "unknown type 'bedrock'" in r.stderr
    assert "supported: openai" in r.stderr
    gw3 = make_gateway(ark="ArkProvider p openai http://127.0.0.1:1/v1 "
                           "key=sk-inline-secret\n", start=False)
    r = gw3.configtest()
    assert r.returncode != 0 and "never written inline" in r.stderr
    assert "sk-inline-secret" not in r.stderr
    gw4 = make_gateway(ark=openai_provider(stub), start=False)
    with open(gw4.keys_file, "w") as f:
        f.write("good sha256:" + "a" * 64 + "\nbad! sha256:xyz\n")
    os.chmod(gw4.keys_file, 0o640)
    r = gw4.configtest()
    assert r.returncode != 0 and "line 2" in r.stderr
    gw5 = make_gateway(ark="ArkGovernRedis 127.0.0.1:1 done-ttl=10\n",
                       start=False)
    r = gw5.configtest()
    assert r.returncode != 0 and "done-ttl" in r.stderr
    gw6 = make_gateway(ark="ArkGovernRedis 127.0.0.1:1 done-ttl=3600\n",
                       start=False)
    r = gw6.configtest()
    assert r.returncode == 0, r.stderr
