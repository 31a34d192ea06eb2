"""10: non-streamed chat completions through mod_ark to the stub."""
import json

from conftest import PROVIDER_SECRET


def test_10_01_answer_and_upstream_request(gateway, stub):
    status, headers, body = gateway.chat(gateway.key, "chat-fast",
                                         "hello there gateway",
                                         temperature=0.2)
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    assert headers["x-ark-provider"] == "stub"
    doc = json.loads(body)
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"]["content"] == \
        "stub says: hello there gateway"
    usage = doc["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"],
            usage["total_tokens"]) == (3, 5, 8)

    reqs = stub.requests()
    assert len(reqs) == 1
    up = reqs[0]
    assert up["path"] == "/v1/chat/completions"
    # the alias was mapped to the upstream model, other fields kept
    assert up["body"]["model"] == "gpt-4o-mini-2024-07-18"
    assert up["body"]["temperature"] == 0.2
    assert up["body"]["messages"] == [{"role": "user",
                                       "content": "hello there gateway"}]
    # the provider's key went upstream, never the client's
    assert up["headers"]["authorization"] == "Bearer " + PROVIDER_SECRET
    assert gateway.key not in json.dumps(up)


def test_10_02_access_log_line(gateway, stub):
    status, _, _ = gateway.chat(gateway.key, "chat-big", "one two")
    assert status == 200
    entries = gateway.access_entries(wait_for=1)
    assert len(entries) == 1
    e = entries[0]
    assert e["key"] == "team-a"
    assert e["tenant"] == "acme"
    assert e["model"] == "chat-big"
    assert e["provider"] == "stub"
    assert e["upstream_model"] == "gpt-4o"
    assert e["status"] == 200
    assert e["stream"] is False
    assert e["prompt_tokens"] == 2 and e["completion_tokens"] == 4
    assert e["total_tokens"] == 6
    assert e["latency_ms"] > 0
    assert e["time"].endswith("Z")


def test_10_03_no_secret_in_any_log(gateway, stub):
    gateway.chat(gateway.key, "chat-fast", "my message body words")
    gateway.chat("sk-ark-not-a-real-key-000000000000000000000000000",
                 "chat-fast", "x")
    gateway.access_entries(wait_for=2)
    logs = gateway.all_logs_text()
    assert PROVIDER_SECRET not in logs
    assert gateway.key not in logs
    assert "sk-ark-not-a-real-key" not in logs
    # no request body in the logs either
    assert "my message body words" not in logs


def test_10_04_models_list_and_retrieve(gateway, make_gateway, stub):
    status, _, body = gateway.request("GET", "/v1/models", key=gateway.key)
    assert status == 200
    doc = json.loads(body)
    assert doc["object"] == "list"
    assert [m["id"] for m in doc["data"]] == ["chat-fast", "chat-big"]
    assert all(m["object"] == "model" for m in doc["data"])

    limited = gateway.create_key("limited", models="chat-big")
    gateway.graceful()
    status, _, body = gateway.request("GET", "/v1/models", key=limited)
    assert [m["id"] for m in json.loads(body)["data"]] == ["chat-big"]
    status, _, body = gateway.request("GET", "/v1/models/chat-big",
                                      key=limited)
    assert status == 200 and json.loads(body)["id"] == "chat-big"
    status, _, body = gateway.request("GET", "/v1/models/chat-fast",
                                      key=limited)
    assert status == 404
    assert json.loads(body)["error"]["code"] == "model_not_found"
    # listing models never calls the provider
    assert stub.requests() == []


def test_10_05_other_auth_headers(gateway, stub):
    for header in ("x-api-key", "api-key"):
        status, _, body = gateway.request(
            "POST", "/v1/chat/completions",
            {"model": "chat-fast",
             "messages": [{"role": "user", "content": "hi"}]},
            headers={header: gateway.key})
        assert status == 200, (header, body)
