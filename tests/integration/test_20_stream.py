"""20: streamed chat completions: SSE relayed event by event."""
import json
import time

from ark_harness import sse_events


def read_stream(gateway, key, text, include_usage=None, timeout=30):
    """Streams a request; returns (events with arrival times, headers)."""
    body = {"model": "chat-fast", "stream": True,
            "messages": [{"role": "user", "content": text}]}
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    c = gateway.conn(timeout)
    c.request("POST", "/v1/chat/completions", body=json.dumps(body),
              headers={"Authorization": "Bearer " + key,
                       "Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    t0 = time.monotonic()
    events, buf = [], b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            for data in sse_events(raw + b"\n\n"):
                events.append((time.monotonic() - t0, data))
    c.close()
    assert buf == b"", buf
    return events, headers


def content_of(events):
    text = ""
    for _, data in events:
        if data == "[DONE]":
            continue
        for ch in json.loads(data)["choices"]:
            text += ch["delta"].get("content") or ""
    return text


def test_20_01_events_arrive_before_upstream_finishes(gateway, stub):
    stub.config(chunk_delay_ms=300)
    events, headers = read_stream(gateway, gateway.key,
                                  "alpha beta gamma delta")
    assert headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in headers
    assert events[-1][1] == "[DONE]"
    assert content_of(events) == "stub says: alpha beta gamma delta"
    # 6 words at 300 ms each: the first content reached the client long
    # before the upstream finished (flush per event, no buffering)
    first, last = events[1][0], events[-1][0]
    assert last - first >= 1.0, events
    assert first < last / 2, events
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_20_02_usage_chunk_only_when_asked(gateway, stub):
    events, _ = read_stream(gateway, gateway.key, "one two three")
    assert not any('"usage":{' in d for _, d in events)
    # mod_ark asked the upstream for usage on the client's behalf...
    assert stub.requests()[0]["body"]["stream_options"] == \
        {"include_usage": True}
    events2, _ = read_stream(gateway, gateway.key, "one two three",
                             include_usage=True)
    usage_chunks = [json.loads(d) for _, d in events2
                    if d != "[DONE]" and json.loads(d).get("usage")]
    assert len(usage_chunks) == 1
    assert usage_chunks[0]["choices"] == []
    assert usage_chunks[0]["usage"]["completion_tokens"] == 5
    # ...and accounted the tokens of both streams
    log = gateway.access_entries(wait_for=2)
    assert [(e["stream"], e["prompt_tokens"], e["completion_tokens"])
            for e in log] == [(True, 3, 5), (True, 3, 5)]


def test_20_03_mid_stream_abort_ends_cleanly(gateway, stub):
    stub.faults({"kind": "abort_mid_stream", "n": 2})
    events, _ = read_stream(gateway, gateway.key, "a b c d e f")
    datas = [d for _, d in events]
    assert datas[-1] == "[DONE]"
    err = json.loads(datas[-2])
    assert set(err) == {"error"}
    assert err["error"]["code"] == "stream_interrupted"
    # every event before it is a well-formed chunk
    for d in datas[:-2]:
        assert json.loads(d)["object"] == "chat.completion.chunk"
    gateway.allow.append(r"ARK00023: channel stub/\S+: stream interrupted")


def test_20_04_malformed_event_ends_cleanly(gateway, stub):
    stub.faults({"kind": "malformed"})
    events, _ = read_stream(gateway, gateway.key, "a b c")
    datas = [d for _, d in events]
    assert datas[-1] == "[DONE]"
    assert json.loads(datas[-2])["error"]["code"] == "upstream_malformed"
    gateway.allow.append(r"ARK00022: channel stub/\S+ sent a malformed stream")


def test_20_05_upstream_error_before_stream_is_plain_json(gateway, stub):
    stub.faults({"kind": "status", "code": 429, "retry_after": 7})
    status, headers, body = gateway.chat(gateway.key, "chat-fast", "x",
                                         stream=True)
    assert status == 429
    assert headers["retry-after"] == "7"
    assert json.loads(body)["error"]["code"] == "upstream_rate_limited"
    gateway.allow.append(r"ARK00036: channel stub/\S+ answered HTTP 429")
