"""Self-check of tests/stub_provider.py: wire formats, auth, faults, recording.

Run with: /usr/bin/python3 -m pytest -q tests/test_stub_selfcheck.py
"""

import base64
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stub_provider import StubProvider  # noqa: E402

KEY = "sk-test"
OPENAI_AUTH = {"Authorization": f"Bearer {KEY}"}
ANTHROPIC_AUTH = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
GEMINI_AUTH = {"x-goog-api-key": KEY}
AZURE_PATH = "/openai/deployments/dep-4o/chat/completions?api-version=2024-10-21"
GEMINI_PATH = "/v1beta/models/gemini-2.0-flash:generateContent"
GEMINI_STREAM_PATH = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
WEATHER_TOOL_OPENAI = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}


@pytest.fixture
def stub():
    with StubProvider("acme", key=KEY) as provider:
        yield provider


def call(stub, method, path, body=None, headers=None, conn=None, timeout=10):
    """One request; returns (status, headers dict with lower-case names, body bytes)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", stub.port, timeout=timeout)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
    finally:
        if own:
            conn.close()


def call_json(stub, method, path, body=None, headers=None, **kw):
    status, hdrs, payload = call(stub, method, path, body, headers, **kw)
    return status, hdrs, json.loads(payload)


def sse(payload, separator="\n\n"):
    """Parse an SSE body into [(event name or None, data text)]; checks the framing."""
    text = payload.decode()
    assert text.endswith(separator)
    events = []
    for block in text[:-len(separator)].split(separator):
        name, data = None, None
        for line in block.split(separator[:len(separator) // 2]):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            else:
                assert field == "data", line
                data = value
        events.append((name, data))
    return events


def records(stub):
    status, _, body = call_json(stub, "GET", "/_stub/requests")
    assert status == 200
    return body


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def openai_chat(text, **extra):
    return {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": text}], **extra}


def anthropic_msg(text, **extra):
    return {"model": "claude-sonnet-4", "max_tokens": 64, "system": "You are terse.",
            "messages": [{"role": "user", "content": text}], **extra}


def gemini_req(text, **extra):
    return {"systemInstruction": {"parts": [{"text": "You are terse."}]},
            "contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def raw_request(port, method, path, body, headers):
    """A hand-written HTTP/1.1 request on a fresh socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    data = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n{head}\r\n".encode() + data)
    return sock


def read_until_reset(sock):
    """Read everything; return (bytes, True if the connection ended with an RST)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, False
        received += chunk


# ---------------------------------------------------------------- OpenAI

def test_openai_chat_completion(stub):
    status, hdrs, body = call_json(stub, "POST", "/v1/chat/completions",
                                   openai_chat("hello there world"), OPENAI_AUTH)
    assert status == 200
    assert hdrs["content-type"] == "application/json"
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["system_fingerprint"]
    assert body["model"] == "gpt-4o-mini"
    assert body["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                "message": {"role": "assistant", "refusal": None,
                                            "content": "acme says: hello there world"}}]
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (6, 5, 11)


def test_openai_prefixed_path_and_content_parts(stub):
    req = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]}]}
    status, _, body = call_json(stub, "POST", "/openai/v1/chat/completions", req, OPENAI_AUTH)
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "acme says: part one part two"
    assert body["usage"]["prompt_tokens"] == 4


def openai_stream(stub, path, req, headers):
    status, hdrs, payload = call(stub, "POST", path, req, headers)
    assert status == 200
    assert hdrs["content-type"].startswith("text/event-stream")
    assert hdrs["transfer-encoding"] == "chunked" and "content-length" not in hdrs
    events = sse(payload)
    assert all(name is None for name, _ in events)
    assert events[-1][1] == "[DONE]"
    return [json.loads(data) for _, data in events[:-1]]


def test_openai_stream_without_usage(stub):
    chunks = openai_stream(stub, "/v1/chat/completions",
                           openai_chat("hello there world", stream=True), OPENAI_AUTH)
    assert len(chunks) == 1 + 5 + 1
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o-mini"
               and "usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    words = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert words == ["acme ", "says: ", "hello ", "there ", "world"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_openai_stream_with_usage_matches_non_stream(stub):
    req = openai_chat("count my words please", stream=True, stream_options={"include_usage": True})
    chunks = openai_stream(stub, "/v1/chat/completions", req, OPENAI_AUTH)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    _, _, plain = call_json(stub, "POST", "/v1/chat/completions",
                            openai_chat("count my words please"), OPENAI_AUTH)
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == plain["usage"]


def test_openai_tool_call(stub):
    req = openai_chat("what is the weather like?", tools=[WEATHER_TOOL_OPENAI])
    _, _, body = call_json(stub, "POST", "/v1/chat/completions", req, OPENAI_AUTH)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call_ = choice["message"]["tool_calls"][0]
    assert call_["id"].startswith("call_") and call_["type"] == "function"
    assert call_["function"]["name"] == "get_weather"
    assert json.loads(call_["function"]["arguments"]) == {"location": "Paris"}
    chunks = openai_stream(stub, "/v1/chat/completions", {**req, "stream": True}, OPENAI_AUTH)
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    arguments = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                        for c in chunks[:-1])
    assert json.loads(arguments) == {"location": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "hi"}]}, None),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    (b"{not json", None),
])
def test_openai_validation(stub, body, param):
    status, _, err = call_json(stub, "POST", "/v1/chat/completions", body, OPENAI_AUTH)
    assert status == 400
    assert set(err["error"]) == {"message", "type", "param", "code"}
    assert err["error"]["type"] == "invalid_request_error" and err["error"]["param"] == param
    assert records(stub)[-1]["outcome"] == "bad_request"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"api-key": KEY}])
def test_openai_auth_failure(stub, headers):
    status, _, err = call_json(stub, "POST", "/v1/chat/completions", openai_chat("hi"), headers)
    assert status == 401
    assert err["error"]["type"] == "invalid_request_error"
    if "Authorization" in headers:
        assert err["error"]["code"] == "invalid_api_key"
    assert records(stub)[-1]["outcome"] == "auth_failed"


def test_openai_embeddings(stub):
    status, _, one = call_json(stub, "POST", "/v1/embeddings",
                               {"model": "text-embedding-3-small", "input": "alpha beta"}, OPENAI_AUTH)
    assert status == 200
    assert one["object"] == "list" and one["model"] == "text-embedding-3-small"
    assert one["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    vector = one["data"][0]["embedding"]
    assert one["data"][0]["object"] == "embedding" and one["data"][0]["index"] == 0
    assert len(vector) == 8 and all(-1 <= x < 1 for x in vector)
    _, _, many = call_json(stub, "POST", "/v1/embeddings",
                           {"model": "e", "input": ["gamma", "alpha beta"]}, OPENAI_AUTH)
    assert [d["index"] for d in many["data"]] == [0, 1]
    assert many["data"][1]["embedding"] == vector != many["data"][0]["embedding"]
    assert many["usage"]["prompt_tokens"] == 3
    _, _, b64 = call_json(stub, "POST", "/v1/embeddings",
                          {"model": "e", "input": "alpha beta", "encoding_format": "base64"}, OPENAI_AUTH)
    decoded = struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, abs=1e-6)


def test_openai_models_and_head(stub):
    status, hdrs, body = call_json(stub, "GET", "/v1/models", headers=OPENAI_AUTH)
    assert status == 200 and body["object"] == "list"
    assert all(m["object"] == "model" and m["owned_by"] == "acme" for m in body["data"])
    status, head_hdrs, payload = call(stub, "HEAD", "/v1/models", headers=OPENAI_AUTH)
    assert status == 200 and payload == b"" and int(head_hdrs["content-length"]) > 0


def test_unknown_path_is_openai_404(stub):
    status, _, err = call_json(stub, "POST", "/v2/nothing", {}, OPENAI_AUTH)
    assert status == 404
    assert err == {"error": {"message": "Invalid URL (POST /v2/nothing)",
                             "type": "invalid_request_error", "param": None, "code": None}}


# ----------------------------------------------------------------- Azure

def test_azure_chat_completion(stub):
    status, _, body = call_json(stub, "POST", AZURE_PATH,
                                {"messages": [{"role": "user", "content": "hi azure"}]},
                                {"api-key": KEY})
    assert status == 200
    assert body["model"] == "dep-4o" and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "acme says: hi azure"
    filters = body["choices"][0]["content_filter_results"]
    assert filters["hate"] == {"filtered": False, "severity": "safe"}
    assert body["prompt_filter_results"][0]["prompt_index"] == 0
    _, _, emb = call_json(stub, "POST", "/openai/deployments/emb/embeddings?api-version=2024-10-21",
                          {"input": "x"}, {"api-key": KEY})
    assert emb["model"] == "emb" and len(emb["data"][0]["embedding"]) == 8


def test_azure_stream(stub):
    req = {"messages": [{"role": "user", "content": "hi azure"}], "stream": True}
    chunks = openai_stream(stub, AZURE_PATH, req, {"api-key": KEY})
    assert chunks[0]["choices"] == [] and chunks[0]["prompt_filter_results"]
    assert chunks[1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:])
    assert text == "acme says: hi azure"
    assert chunks[2]["choices"][0]["content_filter_results"]["violence"]["filtered"] is False
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_azure_errors(stub):
    path = "/openai/deployments/dep-4o/chat/completions"
    req = {"messages": [{"role": "user", "content": "hi"}]}
    status, _, err = call_json(stub, "POST", path, req, {"api-key": KEY})
    assert (status, err) == (404, {"error": {"code": "404", "message": "Resource not found"}})
    for headers in ({}, {"api-key": "nope"}, OPENAI_AUTH):
        status, _, err = call_json(stub, "POST", AZURE_PATH, req, headers)
        assert status == 401 and err["error"]["code"] == "401"
    status, _, err = call_json(stub, "POST", AZURE_PATH, {"messages": []}, {"api-key": KEY})
    assert status == 400 and err["error"]["type"] == "invalid_request_error"
    assert [r["outcome"] for r in records(stub)] == ["bad_request"] + ["auth_failed"] * 3 + ["bad_request"]


# ------------------------------------------------------------- Anthropic

def test_anthropic_message(stub):
    req = anthropic_msg([{"type": "text", "text": "hello"}, {"type": "text", "text": "claude"}])
    req["system"] = [{"type": "text", "text": "Be brief now."}]
    status, hdrs, body = call_json(stub, "POST", "/v1/messages", req, ANTHROPIC_AUTH)
    assert status == 200 and hdrs["request-id"].startswith("req_")
    assert body["id"].startswith("msg_")
    assert {k: body[k] for k in ("type", "role", "model", "stop_reason", "stop_sequence")} == {
        "type": "message", "role": "assistant", "model": "claude-sonnet-4",
        "stop_reason": "end_turn", "stop_sequence": None}
    assert body["content"] == [{"type": "text", "text": "acme says: hello claude"}]
    assert body["usage"] == {"input_tokens": 5, "output_tokens": 4,
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def test_anthropic_stream_sequence_and_usage(stub):
    status, hdrs, payload = call(stub, "POST", "/v1/messages",
                                 anthropic_msg("stream this text", stream=True), ANTHROPIC_AUTH)
    assert status == 200 and hdrs["content-type"].startswith("text/event-stream")
    events = [(name, json.loads(data)) for name, data in sse(payload)]
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 5 + [
        "content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] == 6
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == "acme says: stream this text"
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    _, _, plain = call_json(stub, "POST", "/v1/messages", anthropic_msg("stream this text"), ANTHROPIC_AUTH)
    assert events[-2][1]["usage"]["output_tokens"] == plain["usage"]["output_tokens"] == 5
    assert start["usage"]["input_tokens"] == plain["usage"]["input_tokens"]


def test_anthropic_tool_use(stub):
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    req = anthropic_msg("How is the weather in Paris?", tools=tools)
    _, _, body = call_json(stub, "POST", "/v1/messages", req, ANTHROPIC_AUTH)
    assert body["stop_reason"] == "tool_use"
    block = body["content"][0]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert (block["name"], block["input"]) == ("get_weather", {"location": "Paris"})
    _, _, payload = call(stub, "POST", "/v1/messages", {**req, "stream": True}, ANTHROPIC_AUTH)
    events = [json.loads(data) for _, data in sse(payload)]
    assert events[1]["content_block"]["type"] == "tool_use"
    partial = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert json.loads(partial) == {"location": "Paris"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] == body["usage"]["output_tokens"]


@pytest.mark.parametrize("change, fragment", [
    ({"max_tokens": None}, "max_tokens: Field required"),
    ({"max_tokens": "10"}, "max_tokens: Input should be a valid integer"),
    ({"model": None}, "model: Field required"),
    ({"messages": []}, "at least one message"),
    ({"messages": [{"role": "system", "content": "x"}]}, 'Unexpected role "system"'),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
])
def test_anthropic_validation(stub, change, fragment):
    req = {k: v for k, v in {**anthropic_msg("hi"), **change}.items() if v is not None}
    status, _, err = call_json(stub, "POST", "/v1/messages", req, ANTHROPIC_AUTH)
    assert status == 400
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert fragment in err["error"]["message"]


def test_anthropic_auth_and_version(stub):
    status, _, err = call_json(stub, "POST", "/v1/messages", anthropic_msg("hi"), {"x-api-key": KEY})
    assert status == 400 and "anthropic-version" in err["error"]["message"]
    for headers in ({"anthropic-version": "2023-06-01"},
                    {"x-api-key": "bad", "anthropic-version": "2023-06-01"}):
        status, _, err = call_json(stub, "POST", "/v1/messages", anthropic_msg("hi"), headers)
        assert status == 401
        assert err["type"] == "error" and err["error"]["type"] == "authentication_error"
    assert [r["outcome"] for r in records(stub)] == ["bad_request", "auth_failed", "auth_failed"]


# ---------------------------------------------------------------- Gemini

def test_gemini_generate_content(stub):
    status, hdrs, body = call_json(stub, "POST", GEMINI_PATH, gemini_req("hi gemini"), GEMINI_AUTH)
    assert status == 200 and hdrs["content-type"].startswith("application/json")
    candidate = body["candidates"][0]
    assert candidate == {"content": {"parts": [{"text": "acme says: hi gemini"}], "role": "model"},
                         "finishReason": "STOP", "index": 0}
    usage = body["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["totalTokenCount"]) == (5, 4, 9)
    assert body["modelVersion"] == "gemini-2.0-flash"
    # the key may also come as ?key=
    status, _, _ = call_json(stub, "POST", f"{GEMINI_PATH}?key={KEY}", gemini_req("x"))
    assert status == 200


def test_gemini_stream_sse(stub):
    status, hdrs, payload = call(stub, "POST", GEMINI_STREAM_PATH, gemini_req("hi gemini"), GEMINI_AUTH)
    assert status == 200 and hdrs["content-type"].startswith("text/event-stream")
    events = sse(payload, "\r\n\r\n")
    chunks = [json.loads(data) for name, data in events]
    assert len(chunks) == 4 and "[DONE]" not in payload.decode()
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "acme says: hi gemini"
    assert all("finishReason" not in c["candidates"][0] and "usageMetadata" not in c for c in chunks[:-1])
    _, _, plain = call_json(stub, "POST", GEMINI_PATH, gemini_req("hi gemini"), GEMINI_AUTH)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == plain["usageMetadata"]


def test_gemini_stream_without_alt_sse_is_json_array(stub):
    path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    status, hdrs, payload = call(stub, "POST", path, gemini_req("hi gemini"), GEMINI_AUTH)
    assert status == 200 and hdrs["content-type"].startswith("application/json")
    chunks = json.loads(payload)
    assert len(chunks) == 4 and chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_gemini_function_call(stub):
    tools = [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object"}}]}]
    req = gemini_req("weather please", tools=tools)
    _, _, body = call_json(stub, "POST", GEMINI_PATH, req, GEMINI_AUTH)
    assert body["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]
    _, _, payload = call(stub, "POST", GEMINI_STREAM_PATH, req, GEMINI_AUTH)
    chunks = [json.loads(data) for _, data in sse(payload, "\r\n\r\n")]
    assert len(chunks) == 1
    assert chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert chunks[0]["usageMetadata"] == body["usageMetadata"]


@pytest.mark.parametrize("body, fragment", [
    ({"contents": []}, "contents is not specified"),
    ({}, "contents is not specified"),
    ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
])
def test_gemini_validation(stub, body, fragment):
    status, _, err = call_json(stub, "POST", GEMINI_PATH, body, GEMINI_AUTH)
    assert status == 400
    assert err["error"]["code"] == 400 and err["error"]["status"] == "INVALID_ARGUMENT"
    assert fragment in err["error"]["message"]


def test_gemini_auth_failures(stub):
    status, _, err = call_json(stub, "POST", GEMINI_PATH, gemini_req("x"))
    assert status == 403 and err["error"]["status"] == "PERMISSION_DENIED"
    status, _, err = call_json(stub, "POST", GEMINI_PATH, gemini_req("x"), {"x-goog-api-key": "bad"})
    assert status == 400 and err["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert [r["outcome"] for r in records(stub)] == ["auth_failed", "auth_failed"]


# ---------------------------------------------------------------- Faults

@pytest.mark.parametrize("path, body, headers, code, check", [
    ("/v1/chat/completions", openai_chat("x"), OPENAI_AUTH, 429,
     lambda e: e["error"]["code"] == "rate_limit_exceeded"),
    ("/v1/chat/completions", openai_chat("x"), OPENAI_AUTH, 500,
     lambda e: e["error"]["type"] == "server_error"),
    (AZURE_PATH, openai_chat("x"), {"api-key": KEY}, 429, lambda e: e["error"]["code"] == "429"),
    ("/v1/messages", anthropic_msg("x"), ANTHROPIC_AUTH, 529,
     lambda e: e == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ("/v1/messages", anthropic_msg("x"), ANTHROPIC_AUTH, 429,
     lambda e: e["error"]["type"] == "rate_limit_error"),
    (GEMINI_PATH, gemini_req("x"), GEMINI_AUTH, 503,
     lambda e: (e["error"]["code"], e["error"]["status"]) == (503, "UNAVAILABLE")),
    (GEMINI_PATH, gemini_req("x"), GEMINI_AUTH, 429,
     lambda e: e["error"]["status"] == "RESOURCE_EXHAUSTED"),
])
def test_status_fault_uses_provider_shape(stub, path, body, headers, code, check):
    status, _, _ = call_json(stub, "POST", "/_stub/faults", {"faults": [f"status:{code}:7"]})
    assert status == 200
    status, hdrs, err = call_json(stub, "POST", path, body, headers)
    assert status == code and hdrs["retry-after"] == "7" and check(err)
    status, _, _ = call_json(stub, "POST", path, body, headers)  # the rule is used up
    assert status == 200
    assert [(r["outcome"], r["fault"], r["status"]) for r in records(stub)] == [
        ("fault:status", "status", code), ("complete", None, 200)]


def test_fault_queue_rules(stub):
    rules = [{"kind": "status", "code": 500, "times": 2, "path_contains": "/v1/messages"},
             {"kind": "status", "code": 503, "times": -1, "path_contains": "generateContent"}]
    _, _, pending = call_json(stub, "POST", "/_stub/faults", {"faults": rules})
    assert pending["faults"][0] == {"kind": "status", "code": 500, "retry_after": None,
                                    "times": 2, "path_contains": "/v1/messages"}
    assert call(stub, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)[0] == 200
    for _ in range(2):
        assert call(stub, "POST", "/v1/messages", anthropic_msg("x"), ANTHROPIC_AUTH)[0] == 500
    assert call(stub, "POST", "/v1/messages", anthropic_msg("x"), ANTHROPIC_AUTH)[0] == 200
    for _ in range(3):
        assert call(stub, "POST", GEMINI_PATH, gemini_req("x"), GEMINI_AUTH)[0] == 503
    assert call_json(stub, "GET", "/_stub/faults")[2] == [
        {"kind": "status", "code": 503, "retry_after": None, "times": -1, "path_contains": "generateContent"}]
    call(stub, "DELETE", "/_stub/faults")
    assert call(stub, "POST", GEMINI_PATH, gemini_req("x"), GEMINI_AUTH)[0] == 200
    # a request failing authentication does not consume a rule
    call_json(stub, "POST", "/_stub/faults", {"faults": ["status:500"]})
    assert call(stub, "POST", "/v1/chat/completions", openai_chat("x"), {})[0] == 401
    assert call(stub, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)[0] == 500


@pytest.mark.parametrize("faults", [
    {"faults": [{"kind": "nope"}]},
    {"faults": ["status"]},
    {"faults": [{"kind": "status", "code": 200}]},
    {"faults": [{"kind": "slow", "ms": 5, "times": 0}]},
    {"faults": [{"kind": "reset", "extra": 1}]},
    {"faults": "status:500"},
])
def test_invalid_fault_rules_are_rejected(stub, faults):
    status, _, body = call_json(stub, "POST", "/_stub/faults", faults)
    assert status == 400 and body["error"]
    assert call_json(stub, "GET", "/_stub/faults")[2] == []


def test_in_band_fault_marker(stub):
    status, hdrs, err = call_json(stub, "POST", "/v1/messages",
                                  anthropic_msg("please [[stub:status:429:3]] now"), ANTHROPIC_AUTH)
    assert status == 429 and hdrs["retry-after"] == "3" and err["error"]["type"] == "rate_limit_error"
    status, _, err = call_json(stub, "POST", "/v1/chat/completions",
                               openai_chat("[[stub:bogus]]"), OPENAI_AUTH)
    assert status == 400 and "bogus" in err["error"]["message"]
    assert [r["outcome"] for r in records(stub)] == ["fault:status", "bad_request"]


def test_slow_first_byte(stub):
    start = time.monotonic()
    status, _, _ = call(stub, "POST", "/v1/chat/completions",
                        openai_chat("[[stub:slow_first_byte:400]]"), OPENAI_AUTH)
    assert status == 200 and time.monotonic() - start >= 0.4
    # nothing, not even the status line, arrives before the delay
    call_json(stub, "POST", "/_stub/faults", {"faults": ["slow_first_byte:600"]})
    sock = raw_request(stub.port, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(1)
    sock.settimeout(5)
    assert sock.recv(12) == b"HTTP/1.1 200"
    sock.close()
    assert records(stub)[-1]["outcome"] == "fault:slow_first_byte"


def test_slow_stream_and_non_stream(stub):
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=10)
    conn.request("POST", "/v1/chat/completions",
                 body=json.dumps(openai_chat("one two [[stub:slow:150]]", stream=True)),
                 headers=OPENAI_AUTH)
    resp = conn.getresponse()
    arrivals = []
    while line := resp.readline():
        if line.startswith(b"data: "):
            arrivals.append(time.monotonic())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert len(arrivals) == 8 and min(gaps) >= 0.12
    start = time.monotonic()
    assert call(stub, "POST", "/v1/messages", anthropic_msg("[[stub:slow:300]]"), ANTHROPIC_AUTH)[0] == 200
    assert time.monotonic() - start >= 0.3
    assert [r["outcome"] for r in records(stub)] == ["fault:slow", "fault:slow"]


def test_reset(stub):
    call_json(stub, "POST", "/_stub/faults", {"faults": ["reset"]})
    sock = raw_request(stub.port, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)
    assert read_until_reset(sock) == (b"", True)
    sock.close()
    record = wait_for(lambda: [r for r in records(stub) if r["t_end"]])[0]
    assert record["outcome"] == "fault:reset" and record["status"] is None


def test_abort_mid_stream(stub):
    req = openai_chat("one two three four [[stub:abort_mid_stream:3]]", stream=True)
    sock = raw_request(stub.port, "POST", "/v1/chat/completions", req, OPENAI_AUTH)
    received, was_reset = read_until_reset(sock)
    sock.close()
    assert was_reset
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    assert body.count(b"data: ") == 3 and not body.endswith(b"0\r\n\r\n")
    assert b"[DONE]" not in body
    # http.client sees an incomplete response
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=5)
    conn.request("POST", "/v1/messages",
                 body=json.dumps(anthropic_msg("x [[stub:abort_mid_stream:2]]", stream=True)),
                 headers=ANTHROPIC_AUTH)
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        resp.read()
    assert [r["outcome"] for r in records(stub)] == ["fault:abort_mid_stream"] * 2


def test_abort_non_stream(stub):
    sock = raw_request(stub.port, "POST", GEMINI_PATH, gemini_req("[[stub:abort_mid_stream:1]]"), GEMINI_AUTH)
    received, was_reset = read_until_reset(sock)
    sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    length = int([line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0]
                 .split(b":")[1])
    assert was_reset and 0 < len(body) < length


def test_malformed(stub):
    status, _, payload = call(stub, "POST", "/v1/chat/completions",
                              openai_chat("[[stub:malformed]]"), OPENAI_AUTH)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(payload)
    status, _, payload = call(stub, "POST", "/v1/chat/completions",
                              openai_chat("a b [[stub:malformed]]", stream=True), OPENAI_AUTH)
    events = sse(payload)
    assert status == 200 and events[-1][1] == "[DONE]"
    json.loads(events[0][1])
    with pytest.raises(ValueError):
        json.loads(events[1][1])
    status, _, payload = call(stub, "POST", GEMINI_STREAM_PATH, gemini_req("[[stub:malformed]] z"),
                              GEMINI_AUTH)
    chunks = sse(payload, "\r\n\r\n")
    assert status == 200 and len(chunks) == 4
    with pytest.raises(ValueError):
        json.loads(chunks[1][1])


def test_error_mid_stream(stub):
    status, _, payload = call(stub, "POST", "/v1/messages",
                              anthropic_msg("x y [[stub:error_mid_stream:4:529]]", stream=True),
                              ANTHROPIC_AUTH)
    events = sse(payload)
    assert status == 200
    assert [name for name, _ in events] == ["message_start", "content_block_start", "ping",
                                            "content_block_delta", "error"]
    assert json.loads(events[-1][1]) == {"type": "error", "error": {"type": "overloaded_error",
                                                                     "message": "Overloaded"}}
    status, _, payload = call(stub, "POST", "/v1/chat/completions",
                              openai_chat("x [[stub:error_mid_stream:2]]", stream=True), OPENAI_AUTH)
    events = sse(payload)
    assert len(events) == 3 and json.loads(events[-1][1])["error"]["type"] == "server_error"
    # without streaming it is a plain error status
    status, _, err = call_json(stub, "POST", GEMINI_PATH, gemini_req("[[stub:error_mid_stream:1:503]]"),
                               GEMINI_AUTH)
    assert status == 503 and err["error"]["status"] == "UNAVAILABLE"


def test_hang_until_client_leaves(stub):
    call_json(stub, "POST", "/_stub/faults", {"faults": [{"kind": "hang"}]})
    sock = raw_request(stub.port, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)
    sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        sock.recv(1)
    in_flight = records(stub)[0]
    assert in_flight["outcome"] is None and in_flight["t_end"] is None and in_flight["fault"] == "hang"
    left = time.time()
    sock.close()
    record = wait_for(lambda: [r for r in records(stub) if r["t_end"]])[0]
    assert record["outcome"] == "fault:hang" and record["status"] is None
    assert record["t_end"] - left < 1.0


# ------------------------------------------------- recording / connections

def test_client_gone_is_recorded_quickly(stub):
    call_json(stub, "POST", "/_stub/config", {"chunk_delay_ms": 2000})
    sock = raw_request(stub.port, "POST", "/v1/chat/completions",
                       openai_chat("a b c", stream=True), OPENAI_AUTH)
    received = b""
    while b"data: " not in received:
        received += sock.recv(65536)
    gone = time.time()
    sock.close()
    record = wait_for(lambda: [r for r in records(stub) if r["t_end"]], timeout=1.5)[0]
    assert record["outcome"] == "client_gone" and record["status"] == 200
    assert record["t_end"] - gone < 1.0


def test_keep_alive_and_conn_ids(stub):
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=5)
    call(stub, "POST", "/v1/chat/completions", openai_chat("first"), OPENAI_AUTH, conn=conn)
    call(stub, "POST", "/v1/chat/completions", openai_chat("second", stream=True), OPENAI_AUTH, conn=conn)
    call(stub, "POST", "/v1/messages", anthropic_msg("third"), ANTHROPIC_AUTH, conn=conn)
    conn.close()
    call(stub, "POST", "/v1/chat/completions", openai_chat("fourth"), OPENAI_AUTH)
    recs = records(stub)
    assert [r["seq"] for r in recs] == [1, 2, 3, 4]
    assert recs[0]["conn_id"] == recs[1]["conn_id"] == recs[2]["conn_id"] != recs[3]["conn_id"]
    assert recs[0]["peer_port"] == recs[2]["peer_port"] != recs[3]["peer_port"]
    stats = call_json(stub, "GET", "/_stub/stats")[2]
    assert stats["requests"] == 4 and stats["provider_connections"] == 2
    assert stats["connections_accepted"] >= 3


def test_record_contents(stub):
    req = gemini_req("record me")
    call(stub, "POST", f"/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key={KEY}",
         req, {"X-Custom-Header": "Yes"})
    call(stub, "POST", "/v1/chat/completions", b"not json at all", OPENAI_AUTH)
    first, second = records(stub)
    assert first["method"] == "POST" and first["provider"] == "gemini"
    assert first["path"] == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert first["query"] == {"alt": "sse", "key": KEY}
    assert first["headers"]["x-custom-header"] == "Yes"
    assert all(name == name.lower() for name in first["headers"])
    assert first["body"] == req and first["outcome"] == "complete" and first["status"] == 200
    assert first["t_start"] <= first["t_end"] <= second["t_start"]
    assert second["body"] == "not json at all" and second["outcome"] == "bad_request"
    assert call_json(stub, "DELETE", "/_stub/requests")[2] == {"cleared": 2}
    assert records(stub) == []
    call(stub, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)
    assert [r["seq"] for r in records(stub)] == [3]


def test_config_and_reset(stub):
    assert call_json(stub, "GET", "/_stub/config")[2] == {"chunk_delay_ms": 0, "first_byte_delay_ms": 0}
    assert call_json(stub, "POST", "/_stub/config", {"first_byte_delay_ms": 300})[2] == {
        "chunk_delay_ms": 0, "first_byte_delay_ms": 300}
    assert call_json(stub, "POST", "/_stub/config", {"bogus": 1})[0] == 400
    assert call_json(stub, "POST", "/_stub/config", {"chunk_delay_ms": -1})[0] == 400
    start = time.monotonic()
    call(stub, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)
    assert time.monotonic() - start >= 0.3
    call_json(stub, "POST", "/_stub/faults", {"faults": ["reset"]})
    assert call_json(stub, "POST", "/_stub/reset")[2] == {"ok": True}
    assert call_json(stub, "GET", "/_stub/config")[2]["first_byte_delay_ms"] == 0
    assert call_json(stub, "GET", "/_stub/faults")[2] == [] and records(stub) == []
    assert call_json(stub, "GET", "/_stub/nothing")[0] == 404


def test_instances_are_independent(stub):
    with StubProvider("other") as other:
        call_json(other, "POST", "/_stub/faults", {"faults": ["status:500"]})
        assert call(stub, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)[0] == 200
        _, _, body = call_json(other, "POST", "/v1/chat/completions", openai_chat("x"),
                               {"Authorization": "Bearer anything"})
        assert body["error"]["type"] == "server_error"
        assert len(records(other)) == 1 and len(records(stub)) == 1


def test_command_line_process():
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stub_provider.py")
    proc = subprocess.Popen(["/usr/bin/python3", script, "--port", "0", "--name", "cli", "--key", "k"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY ")
        port = int(line.split()[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(openai_chat("hi")),
                     headers={"Authorization": "Bearer k"})
        body = json.loads(conn.getresponse().read())
        assert body["choices"][0]["message"]["content"] == "cli says: hi"
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        assert proc.stdout.read() == ""
        proc.stdout.close()


# ---------------------------------------------------------- token accounting

def tokens(stub):
    return call_json(stub, "GET", "/_stub/stats")[2]["tokens"]


def reported_usage(path, payload):
    """(prompt, completion) as a client reads them from any answer."""
    text = payload.decode()
    if text.startswith("{"):
        body = json.loads(text)
        if "usageMetadata" in body:
            u = body["usageMetadata"]
            return u["promptTokenCount"], u["candidatesTokenCount"]
        u = body["usage"]
        if "input_tokens" in u:
            return u["input_tokens"], u["output_tokens"]
        return u["prompt_tokens"], u.get("completion_tokens", 0)
    if text.startswith("["):
        u = json.loads(text)[-1]["usageMetadata"]
        return u["promptTokenCount"], u["candidatesTokenCount"]
    sep = "\r\n\r\n" if "\r\n\r\n" in text else "\n\n"
    datas = [json.loads(d) for _, d in sse(payload, sep) if d != "[DONE]"]
    if "usageMetadata" in datas[-1]:
        return datas[-1]["usageMetadata"]["promptTokenCount"], \
            datas[-1]["usageMetadata"]["candidatesTokenCount"]
    if datas[0].get("type") == "message_start":
        return datas[0]["message"]["usage"]["input_tokens"], datas[-2]["usage"]["output_tokens"]
    return datas[-1]["usage"]["prompt_tokens"], datas[-1]["usage"]["completion_tokens"]


TOKEN_CASES = [  # (method path, body, headers)
    ("/v1/chat/completions", openai_chat("one two three"), OPENAI_AUTH),
    ("/v1/chat/completions", openai_chat("one two three", stream=True,
                                         stream_options={"include_usage": True}), OPENAI_AUTH),
    ("/v1/chat/completions", openai_chat("weather now", tools=[WEATHER_TOOL_OPENAI], stream=True,
                                         stream_options={"include_usage": True}), OPENAI_AUTH),
    ("/v1/embeddings", {"model": "e", "input": ["alpha beta", "gamma"]}, OPENAI_AUTH),
    (AZURE_PATH, {"messages": [{"role": "user", "content": "hi azure"}], "stream": True,
                  "stream_options": {"include_usage": True}}, {"api-key": KEY}),
    ("/v1/messages", anthropic_msg("four words right here"), ANTHROPIC_AUTH),
    ("/v1/messages", anthropic_msg("four words right here", stream=True), ANTHROPIC_AUTH),
    (GEMINI_PATH, gemini_req("hi gemini"), GEMINI_AUTH),
    (GEMINI_STREAM_PATH, gemini_req("hi gemini there"), GEMINI_AUTH),
    ("/v1beta/models/g:streamGenerateContent", gemini_req("json array stream"), GEMINI_AUTH),
]


def test_tokens_of_complete_answers_match_what_each_reported(stub):
    want_p = want_c = 0
    for path, body, headers in TOKEN_CASES:
        status, _, payload = call(stub, "POST", path, body, headers)
        assert status == 200, (path, payload)
        prompt, completion = reported_usage(path, payload)
        assert records(stub)[-1]["usage"] == {"prompt_tokens": prompt,
                                              "completion_tokens": completion}, path
        want_p += prompt
        want_c += completion
    assert want_p > 0 and want_c > 0
    assert tokens(stub) == {"prompt": want_p, "completion": want_c,
                            "responses": len(TOKEN_CASES)}


def test_tokens_of_stream_without_usage_report(stub):
    call(stub, "POST", "/v1/chat/completions", openai_chat("no usage asked"), OPENAI_AUTH)
    plain = records(stub)[-1]["usage"]
    status, _, payload = call(stub, "POST", "/v1/chat/completions",
                              openai_chat("no usage asked", stream=True), OPENAI_AUTH)
    assert status == 200 and b'"usage"' not in payload
    assert records(stub)[-1]["usage"] == plain == {"prompt_tokens": 6, "completion_tokens": 5}
    assert tokens(stub) == {"prompt": 12, "completion": 10, "responses": 2}


def test_tokens_not_counted_for_failures(stub):
    call(stub, "POST", "/v1/chat/completions", openai_chat("x"), {})            # auth
    call(stub, "POST", "/v1/chat/completions", {"model": "m"}, OPENAI_AUTH)     # validation
    call_json(stub, "POST", "/_stub/faults", {"faults": [
        "status:500", "malformed", "error_mid_stream:2"]})
    call(stub, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)
    call(stub, "POST", "/v1/chat/completions", openai_chat("x"), OPENAI_AUTH)
    call(stub, "POST", "/v1/chat/completions", openai_chat("a b", stream=True), OPENAI_AUTH)
    assert [r["usage"] for r in records(stub)] == [None] * 5
    assert tokens(stub) == {"prompt": 0, "completion": 0, "responses": 0}
    # "slow" only delays the answer: counted
    call_json(stub, "POST", "/_stub/faults", {"faults": ["slow:10"]})
    call(stub, "POST", "/v1/chat/completions", openai_chat("a b", stream=True), OPENAI_AUTH)
    assert records(stub)[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4}
    assert tokens(stub)["responses"] == 1


def test_tokens_of_abandoned_stream_count_pieces_written(stub):
    call_json(stub, "POST", "/_stub/config", {"chunk_delay_ms": 300})
    words = " ".join("w%d" % i for i in range(20))
    sock = raw_request(stub.port, "POST", "/v1/chat/completions",
                       openai_chat(words, stream=True), OPENAI_AUTH)
    received = b""
    while received.count(b'"content":"w') < 2:      # two words of the echo
        received += sock.recv(65536)
    sock.close()
    record = wait_for(lambda: [r for r in records(stub) if r["t_end"]], timeout=2)[0]
    assert record["outcome"] == "client_gone"
    usage = record["usage"]
    assert usage["prompt_tokens"] == 3 + 20        # system words + user words
    # "stub says: w0 w1" read, at most one more piece written meanwhile
    assert 4 <= usage["completion_tokens"] <= 5 < 22
    assert tokens(stub) == {"prompt": usage["prompt_tokens"],
                            "completion": usage["completion_tokens"], "responses": 1}


def test_tokens_survive_reset_and_clear(stub):
    call(stub, "POST", "/v1/chat/completions", openai_chat("keep me"), OPENAI_AUTH)
    before = tokens(stub)
    assert before["responses"] == 1
    call_json(stub, "POST", "/_stub/reset")
    call_json(stub, "DELETE", "/_stub/requests")
    assert tokens(stub) == before
