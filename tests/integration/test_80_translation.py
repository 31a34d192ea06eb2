"""80: protocol translation: OpenAI clients reach Anthropic, Gemini and
Azure upstreams (and the Anthropic front reaches every upstream); checked
on what the upstream received and what the client got."""
import json

from ark_harness import assert_openai_error, sse_events
from conftest import PROVIDER_SECRET

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def gateway_for(make_gateway, stub, ptype, base_path, model, extra="",
                allow=()):
    ark = ("ArkProvider up %s %s%s key=env:ARK_TEST_PROVIDER_KEY %s\n"
           "ArkModel m up %s\n" % (ptype, stub.base, base_path, extra, model))
    gw = make_gateway(ark=ark, start=False, allow=allow)
    gw.key = gw.create_key("k")
    gw.start()
    return gw


def stream_text(body):
    text, finish, usage = "", None, None
    events = sse_events(body)
    assert events[-1] == "[DONE]", events
    for data in events[:-1]:
        chunk = json.loads(data)
        assert chunk["object"] == "chat.completion.chunk"
        if chunk.get("usage"):
            usage = chunk["usage"]
        for ch in chunk["choices"]:
            text += ch["delta"].get("content") or ""
            finish = ch.get("finish_reason") or finish
    return text, finish, usage


def chat(gw, body, **kw):
    return gw.request("POST", "/v1/chat/completions", body, gw.key, **kw)


SYSTEM_USER = {"model": "m", "temperature": 0.3, "stop": ["END"],
               "messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "hello anthropic"}]}


def test_80_01_anthropic_non_stream(make_gateway, stub):
    gw = gateway_for(make_gateway, stub, "anthropic", "/v1",
                     "claude-3-5-haiku-latest",
                     "anthropic-version=2023-06-01 max-tokens=1024")
    st, _, body = chat(gw, SYSTEM_USER)
    assert st == 200, body
    doc = json.loads(body)
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"] == {
        "role": "assistant", "content": "stub says: hello anthropic"} or \
        doc["choices"][0]["message"]["content"] == \
        "stub says: hello anthropic"
    assert doc["choices"][0]["finish_reason"] == "stop"
    assert doc["usage"]["prompt_tokens"] == 4
    assert doc["usage"]["completion_tokens"] == 4
    up = stub.requests()[0]
    assert up["path"] == "/v1/messages"
    assert up["headers"]["x-api-key"] == PROVIDER_SECRET
    assert up["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in up["headers"]
    b = up["body"]
    assert b["model"] == "claude-3-5-haiku-latest"
    assert b["system"] == "Be brief."
    assert b["max_tokens"] == 1024
    assert b["stop_sequences"] == ["END"]
    assert b["temperature"] == 0.3
    assert b["messages"] == [{"role": "user", "content": "hello anthropic"}]


def test_80_02_anthropic_stream_and_tools(make_gateway, stub):
    gw = gateway_for(make_gateway, stub, "anthropic", "/v1",
                     "claude-3-5-haiku-latest")
    body = dict(SYSTEM_USER, stream=True,
                stream_options={"include_usage": True})
    st, headers, raw = chat(gw, body)
    assert st == 200 and headers["content-type"].startswith(
        "text/event-stream")
    text, finish, usage = stream_text(raw)
    assert text == "stub says: hello anthropic"
    assert finish == "stop"
    assert usage["completion_tokens"] == 4
    assert stub.requests()[0]["body"]["stream"] is True
    # tool calls come back in OpenAI's shape
    st, _, raw = chat(gw, {"model": "m", "tools": TOOLS,
                           "messages": [{"role": "user",
                                         "content": "weather in Paris?"}]})
    doc = json.loads(raw)
    choice = doc["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "Paris"}
    up = stub.requests()[-1]["body"]
    assert up["tools"][0]["name"] == "get_weather"
    assert up["tools"][0]["input_schema"]["required"] == ["city"]


def test_80_03_gemini_non_stream_and_stream(make_gateway, stub):
    gw = gateway_for(make_gateway, stub, "gemini", "/v1beta",
                     "gemini-1.5-flash")
    st, _, body = chat(gw, SYSTEM_USER)
    assert st == 200, body
    doc = json.loads(body)
    assert doc["choices"][0]["message"]["content"] == \
        "stub says: hello anthropic"
    assert doc["usage"]["completion_tokens"] == 4
    up = stub.requests()[0]
    assert up["path"] == "/v1beta/models/gemini-1.5-flash:generateContent"
    assert up["headers"]["x-goog-api-key"] == PROVIDER_SECRET
    assert "key" not in up["query"]          # never in the URL
    b = up["body"]
    assert b["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert b["contents"] == [{"role": "user",
                              "parts": [{"text": "hello anthropic"}]}]
    assert b["generationConfig"]["temperature"] == 0.3
    assert b["generationConfig"]["stopSequences"] == ["END"]

    st, _, raw = chat(gw, dict(SYSTEM_USER, stream=True,
                               stream_options={"include_usage": True}))
    assert st == 200
    text, finish, usage = stream_text(raw)
    assert text == "stub says: hello anthropic"
    assert finish == "stop" and usage["completion_tokens"] == 4
    up = stub.requests()[1]
    assert up["path"] == \
        "/v1beta/models/gemini-1.5-flash:streamGenerateContent"
    assert up["query"] == {"alt": "sse"}


def test_80_04_azure(make_gateway, stub):
    gw = gateway_for(make_gateway, stub, "azure", "", "gpt4o-prod",
                     "api-version=2024-10-21")
    st, _, body = chat(gw, SYSTEM_USER)
    assert st == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"] == \
        "stub says: hello anthropic"
    up = stub.requests()[0]
    assert up["path"] == "/openai/deployments/gpt4o-prod/chat/completions"
    assert up["query"] == {"api-version": "2024-10-21"}
    assert up["headers"]["api-key"] == PROVIDER_SECRET
    st, _, raw = chat(gw, dict(SYSTEM_USER, stream=True))
    text, finish, usage = stream_text(raw)
    assert text == "stub says: hello anthropic" and usage is None
    # Azure's choice-less prompt-filter chunk is not relayed
    assert all(json.loads(d)["choices"] for d in sse_events(raw)[:-1])


def test_80_05_embeddings(make_gateway, stub):
    ark = ("ArkProvider oa openai %s/v1 key=env:ARK_TEST_PROVIDER_KEY\n"
           "ArkProvider cl anthropic %s/v1 key=env:ARK_TEST_PROVIDER_KEY\n"
           "ArkModel emb oa text-embedding-3-small\n"
           "ArkModel claude cl claude-3-5-haiku-latest\n"
           % (stub.base, stub.base))
    gw = make_gateway(ark=ark, start=False)
    key = gw.create_key("k")
    gw.start()
    st, _, body = gw.request("POST", "/v1/embeddings",
                             {"model": "emb", "input": ["a b", "c"]}, key)
    assert st == 200, body
    doc = json.loads(body)
    assert doc["object"] == "list" and len(doc["data"]) == 2
    assert len(doc["data"][0]["embedding"]) == 8
    assert stub.requests()[0]["path"] == "/v1/embeddings"
    assert stub.requests()[0]["body"]["model"] == "text-embedding-3-small"
    st, _, body = gw.request("POST", "/v1/embeddings",
                             {"model": "claude", "input": "x"}, key)
    assert_openai_error(st, body, 400, "unsupported_endpoint")
    st, _, body = gw.request("POST", "/v1/embeddings", {"model": "emb"},
                             key)
    err = assert_openai_error(st, body, 400, "missing_required_parameter")
    assert err["param"] == "input"


def test_80_06_upstream_errors_translated(make_gateway, stub):
    gw = gateway_for(make_gateway, stub, "anthropic", "/v1",
                     "claude-3-5-haiku-latest",
                     allow=[r"ARK00036: channel up/\S+ answered HTTP 529",
                            r"ARK00036: channel up/\S+ answered HTTP 429"])
    stub.faults({"kind": "status", "code": 529})
    st, _, body = chat(gw, SYSTEM_USER)
    assert_openai_error(st, body, 502, "upstream_error")
    stub.faults({"kind": "status", "code": 429, "retry_after": 3})
    st, headers, body = chat(gw, SYSTEM_USER)
    assert_openai_error(st, body, 429, "upstream_rate_limited")
    assert headers["retry-after"] == "3"


def test_80_07_failover_across_provider_types(make_gateway, make_stub):
    a, g = make_stub("claude"), make_stub("gemini")
    ark = ("ArkProvider cl anthropic %s/v1 key=env:ARK_TEST_PROVIDER_KEY\n"
           "ArkProvider ge gemini %s/v1beta key=env:ARK_TEST_PROVIDER_KEY\n"
           "ArkModel m cl claude-3-5-haiku-latest\n"
           "ArkModel m ge gemini-1.5-flash\n"
           "ArkRoute m strategy=fallback\n" % (a.base, g.base))
    gw = make_gateway(ark=ark, start=False,
                      allow=[r"ARK00036: channel cl/\S+ answered HTTP 500"])
    gw.key = gw.create_key("k")
    gw.start()
    a.faults({"kind": "status", "code": 500})
    st, headers, raw = chat(gw, dict(SYSTEM_USER, stream=True))
    assert st == 200 and headers["x-ark-provider"] == "ge"
    assert stream_text(raw)[0] == "gemini says: hello anthropic"
    assert len(a.requests()) == 1 and len(g.requests()) == 1


def test_80_08_anthropic_front_to_gemini_stream(make_gateway, stub):
    """A Claude-native client, a Gemini upstream: Anthropic events out."""
    gw = gateway_for(make_gateway, stub, "gemini", "/v1beta",
                     "gemini-1.5-flash")
    st, headers, raw = gw.request(
        "POST", "/v1/messages",
        {"model": "m", "max_tokens": 100, "stream": True,
         "messages": [{"role": "user", "content": "via the front"}]},
        headers={"x-api-key": gw.key, "anthropic-version": "2023-06-01"})
    assert st == 200
    frames = [f for f in raw.decode().split("\n\n") if f.strip()]
    names = [f.split("\n")[0][len("event: "):] for f in frames]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "message_delta" in names
    text = "".join(json.loads(f.split("\n")[1][6:])["delta"]["text"]
                   for f in frames if f.startswith(
                       "event: content_block_delta"))
    assert text == "stub says: via the front"
    # errors in Anthropic's shape
    st, _, raw = gw.request(
        "POST", "/v1/messages",
        {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": gw.key})
    doc = json.loads(raw)
    assert st == 400 and doc["type"] == "error"
    assert doc["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in doc["error"]["message"]
