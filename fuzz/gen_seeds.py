#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets, fuzz/corpus/<target>/.

Seeds are small realistic inputs: the golden files of tests/cases (client
requests, upstream answers and streams) and hand-written frames, key
lines and edge cases. Each seed is written as <target>/<name>; files
already in a corpus directory (inputs merged by `make fuzz-update`,
crash reproducers saved as regression seeds) are left alone, so the
script can be run again after the fixtures change.

    fuzz/gen_seeds.py            # from the top of the source tree or not
"""
import glob
import hashlib
import json
import os

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(TOP, "tests", "cases")
CORPUS = os.path.join(TOP, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def case_files(kind, pattern):
    """(case name, path) of every tests/cases/<kind>/<case>/<pattern>."""
    for path in sorted(glob.glob(os.path.join(CASES, kind, "*", pattern))):
        yield os.path.basename(os.path.dirname(path)), path


# ------------------------------------------------------ client requests

CHAT = [
    ("minimal", {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "Hello!"}]}),
    ("stream-usage", {"model": "gpt-4o", "stream": True,
                      "stream_options": {"include_usage": True},
                      "messages": [{"role": "user", "content": "Hi"}]}),
    ("stream-options-null", {"model": "m", "stream": True,
                             "stream_options": None,
                             "messages": [{"role": "user", "content": "x"}]}),
    ("stream-options-false", {"model": "m", "stream": True,
                              "stream_options": {"include_usage": False},
                              "messages": [{"role": "user", "content": "x"}]}),
    ("max-tokens", {"model": "m", "max_tokens": 100,
                    "max_completion_tokens": 50, "n": 1, "temperature": 0.5,
                    "messages": [{"role": "developer", "content": "Be brief"},
                                 {"role": "user", "content": "x"}]}),
    ("tool-call-history", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto"}),
]

EMBED = [
    ("embed-string", {"model": "text-embedding-3-small", "input": "hello"}),
    ("embed-strings", {"model": "e", "input": ["a", "b"],
                       "encoding_format": "float", "dimensions": 256}),
    ("embed-tokens", {"model": "e", "input": [1, 2, 3]}),
    ("embed-token-arrays", {"model": "e", "input": [[1, 2], [3]]}),
]

RAW_REQUESTS = [
    ("escaped-model-key", '{"mod\\u0065l":"gpt-4o","messages":'
                          '[{"role":"user","content":"x"}]}'),
    ("spaces", ' {\r\n "model" : "m" ,\t"stream":true, "messages" : '
               '[ { "role" : "user" , "content" : "\\ud83d\\ude00" } ] }\n'),
    ("duplicate-model", '{"model":"a","model":"b","messages":[]}'),
    ("not-object", '[1,2]'),
    ("truncated", '{"model":"gpt-4o","messages":[{"role":"user"'),
    ("empty", ''),
]


def chat_requests():
    for name, path in case_files("translate", "input.json"):
        if "response" not in name:
            yield "case-" + name, read(path)
    for name, obj in CHAT:
        yield name, compact(obj)


def requests():
    yield from chat_requests()
    for name, obj in EMBED:
        yield name, compact(obj)
    for name, text in RAW_REQUESTS:
        yield name, text


# ------------------------------------------------------ upstream answers

RESPONSES = [
    ("openai-chat", {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
        "model": "gpt-4o", "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2,
                  "total_tokens": 11,
                  "prompt_tokens_details": {"cached_tokens": 4}}}),
    ("openai-tool-calls", {
        "id": "chatcmpl-2", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {
                    "name": "get_weather",
                    "arguments": "{\"city\":\"Paris\"}"}}]},
            "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5}}),
    ("openai-embeddings", {
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0,
                  "embedding": [0.1, -0.2, 1e-3]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
    ("openai-error", {"error": {"message": "Invalid value for 'temperature'",
                                "type": "invalid_request_error",
                                "param": "temperature", "code": None}}),
    ("openai-error-secret", {"error": {
        "message": "Incorrect API key provided: sk-fuzz-0123456789abcdefSECRET",
        "type": "invalid_request_error", "code": "invalid_api_key"}}),
    ("anthropic-error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}),
    ("gemini-error-retry", {"error": {
        "code": 429, "message": "Quota exceeded", "status":
        "RESOURCE_EXHAUSTED", "details": [{
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": "27s"}]}}),
]

RAW_RESPONSES = [
    ("html", "<html><head><title>502 Bad Gateway</title></head></html>"),
    ("empty-object", "{}"),
    ("usage-only", '{"choices":[],"usage":{"prompt_tokens":1}}'),
]


def responses():
    for name, path in case_files("translate", "input.json"):
        if "response" in name:
            yield "case-" + name, read(path)
    for name, path in case_files("front", "input.json"):
        if name.startswith("anthropic-resp-"):
            body = json.loads(read(path))["body"]
            yield "front-" + name, compact(body)
    for name, obj in RESPONSES:
        yield name, compact(obj)
    for name, text in RAW_RESPONSES:
        yield name, text


# ------------------------------------------------------ upstream streams

def openai_sse(events, crlf=False):
    eol = "\r\n" if crlf else "\n"
    out = ""
    for ev in events:
        data = ev if isinstance(ev, str) else compact(ev)
        out += "data: " + data + eol + eol
    return out


def chunk(delta, finish=None, usage=None, index=0):
    c = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
         "created": 1, "model": "gpt-4o",
         "choices": [{"index": index, "delta": delta,
                      "finish_reason": finish}]}
    if usage is not None:
        c["usage"] = usage
    return c


OPENAI_STREAMS = [
    ("openai-text", [chunk({"role": "assistant", "content": ""}),
                     chunk({"content": "Hello"}), chunk({}, "stop"),
                     {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                      "choices": [], "usage": {"prompt_tokens": 5,
                                               "completion_tokens": 1,
                                               "total_tokens": 6}},
                     "[DONE]"]),
    ("openai-tools", [
        chunk({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {
            "arguments": "{\"city\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {
            "arguments": "\"Paris\"}"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                               "function": {"name": "t2",
                                            "arguments": "{}"}}]}),
        chunk({}, "tool_calls"), "[DONE]"]),
    ("openai-error-event", [chunk({"content": "Hel"}),
                            {"error": {"message": "overloaded",
                                       "type": "server_error"}}]),
    ("openai-length", [chunk({"content": "a"}), chunk({}, "length",
                       {"prompt_tokens": 3, "completion_tokens": 1}),
                       "[DONE]"]),
]

RAW_STREAMS = [
    ("comments-crlf", ": keep-alive\r\n\r\nevent: message\r\nid: 1\r\n"
                      "retry: 10\r\ndata: [DONE]\r\n\r\n"),
    ("cr-only", "data: {\"choices\":[]}\r\rdata: [DONE]\r\r"),
    ("multiline-data", "data: {\"choices\":\ndata: []}\n\n"),
    ("truncated", "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}"),
    ("bom-no-space", "\ufeffdata:[DONE]\n\ndata\n\n:\n\nevent\n\n"),
]


def front_streams():
    """The front's stream cases as the OpenAI stream they stand for."""
    for name, path in case_files("front", "input.json"):
        if name.startswith("anthropic-stream-"):
            yield "front-" + name, openai_sse(json.loads(read(path))["events"])


def streams():
    for name, path in case_files("translate", "upstream.sse"):
        yield "case-" + name, read(path)
    yield from front_streams()
    for name, events in OPENAI_STREAMS:
        yield name, openai_sse(events)
    yield "openai-text-crlf", openai_sse(OPENAI_STREAMS[0][1], crlf=True)
    for name, text in RAW_STREAMS:
        yield name, text


# ---------------------------------------------------------- JSON texts

JSON_TEXTS = [
    ("numbers", '[0,-0,1.5e10,-2E-3,9223372036854775807,'
                '-9223372036854775808,1e308,0.0]'),
    ("big-int", '[9223372036854775808]'),
    ("real-overflow", '[1e400]'),
    ("escapes", '{"a\\"b":"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"}'),
    ("lone-surrogate", '["\\ud800"]'),
    ("nul-escape", '["\\u0000"]'),
    ("utf8", '{"k":"caf\u00e9 \u4e2d \U0001f600"}'),
    ("bad-utf8", b'["\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"]'),
    ("raw-nul-after-number", b'[1\x00]'),
    ("control-char", '["a\tb"]'),
    ("deep", "[" * 100 + "]" * 100),
    # streamed chunks: the nested fields of ark_json_scan_nested
    ("chunk-content", '{"id":"chatcmpl-1","object":"chat.completion.chunk",'
                      '"created":1,"model":"m","choices":[{"index":0,'
                      '"delta":{"content":"Pa\\"ris\\n"},"logprobs":null,'
                      '"finish_reason":null}],"usage":null}'),
    ("chunk-tools", '{"choices":[{"index":2,"delta":{"tool_calls":[{"index":0,'
                    '"function":{"arguments":"{\\"a\\":1}"}}]}}]}'),
    ("chunk-usage", '{"choices":[],"usage":{"prompt_tokens":9,'
                    '"completion_tokens":20,"total_tokens":29}}'),
    ("chunk-repeated", '{"choices":[{"delta":{"content":"x"},"delta":{}}],'
                       '"choices":[{"model":{"n":1},"delta":{"content":"y"}}]}'),
    ("too-deep", "[" * 2049 + "]" * 2049),
    ("trailing", '{"a":1} x'),
    ("duplicates", '{"model":"a","usage":{"prompt_tokens":1},'
                   '"model":"b","usage":{"prompt_tokens":2}}'),
    ("usage", '{"usage":{"prompt_tokens":12,"completion_tokens":3,'
              '"total_tokens":15,"prompt_tokens_details":'
              '{"cached_tokens":8}}}'),
    ("usage-negative", '{"prompt_tokens":-1,"completion_tokens":1.0,'
                       '"total_tokens":"3"}'),
    ("literals", '[true,false,null]'),
    ("bad-literal", '[tru]'),
    ("scalar-top", '"just a string"'),
    ("empty", ''),
]


def json_texts():
    for name, text in JSON_TEXTS:
        yield name, text
    for name, text in requests():
        if name.startswith("case-"):
            continue
        yield "req-" + name, text
    for name, text in responses():
        if name.startswith("case-"):
            continue
        yield "resp-" + name, text


# ------------------------------------------------------------------ RESP

def bulk(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


RESP = [
    ("ping", bulk("PING")),
    ("echo-binary", bulk("ECHO", b"a\r\nb\0c*$\n")),
    ("store", bulk("ARK.STORE", "ns", "", "abc")),
    ("store-ttl", bulk("ARK.STORE", "tenant:acme", "hello world",
                       '{"choices":[]}', "EX", "60")),
    ("lookup", bulk("ARK.LOOKUP", "ns", "hello world")),
    ("auth", bulk("AUTH", "s3cret")),
    ("pipeline", bulk("PING") + bulk("INFO", "server") + b"PING\r\n"),
    ("empty-frames", b"\r\n*0\r\n*-1\r\n" + bulk("PING")),
    ("inline", b"   info   server  \r\n"),
    ("inline-quotes", b"ECHO \"a b\\r\\n\\x41\" 'it\\'s'\n"),
    ("inline-unbalanced", b"ECHO \"abc\n"),
    ("inline-quote-then-word", b"ECHO \"a\"b\n"),
    ("too-many-args", b"*65\r\n"),
    ("bad-length", b"*1\r\n$x\r\n"),
    ("negative-bulk", b"*1\r\n$-2\r\n"),
    ("long-length", b"*1\r\n$9999999999999999999\r\n"),
    ("bulk-no-crlf", b"*1\r\n$3\r\nabcX\r\n"),
    ("expected-dollar", b"*1\r\n:1\r\n"),
    ("big-bulk", bulk("ECHO", "x" * 40)),
    ("partial", b"*2\r\n$4\r\nECHO\r\n$5\r\nhel"),
]


# ------------------------------------------------------------ keys files

def sha(secret):
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


KEYS = [
    ("docs-example",
     "# Ark virtual keys. Edit with ark-keys; see docs/keys.md.\n\n"
     "# Alice's laptop, ticket OPS-1234\n"
     "alice-laptop %s tenant=acme models=gpt-4o,claude-sonnet "
     "priority=high tags=region=eu,region=us,tier=official "
     "created=2026-11-27T11:00:00Z hint=wZ5U\n"
     "ci-bot %s tenant=acme priority=low state=revoked "
     "created=2026-10-02T09:12:44Z hint=Q0sA\n"
     "batch@research %s\n" % (sha("a"), sha("b"), sha("c"))),
    ("one-key", "alice %s\n" % sha("s1")),
    ("all-attrs", "  bob.team@acme_1-x\t%s  hint=ab-_ state=revoked\t"
                  "models=gpt-4o,claude:3.5/sonnet,m@v1 "
                  "created=2026-11-27T11:00:00Z tenant=acme\n" % sha("s")),
    ("crlf-bom", "\ufeff# header\r\n\r\n   # indented comment\r\n"
                 "a %s tenant=t\r\n \t \r\n# about b\nb %s\r\n"
                 "#trailing comment\nc %s models=x" % (sha("a"), sha("b"),
                                                       sha("c"))),
    ("tags", "a %s priority=high tags=region=eu,region=us,tier=official\n"
             "b %s\ttags=x.y_z-1:a/b=V.1_-:/\tpriority=low\n"
             "c %s priority=normal\n" % (sha("a"), sha("b"), sha("c"))),
    ("tenants-limits", "tenant:acme rpm=100 tpm=10000 budget_day=5000000\n"
                       "a %s tenant=acme rpm=10 concurrency=2 "
                       "rpm@openai=5 tpm@openai=1000\n" % sha("a")),
    ("rotated", "a %s previous=%s previous_until=2026-12-01T00:00:00Z\n"
                % (sha("a"), sha("abc"))),
    ("comments-only", "# nothing yet\n\n\n# really\n"),
    ("empty", ""),
    ("bad-name", "al!ce %s\n" % sha("x")),
    ("short-hash", "a sha256:%s\n" % ("0" * 63)),
    ("duplicate-name", "a %s\na %s\n" % (sha("a"), sha("b"))),
    ("duplicate-hash", "a %s\nb %s\n" % (sha("a"), sha("a"))),
    ("unknown-attr", "a %s modles=x\n" % sha("a")),
    ("twice", "a %s tags=a=b tags=c=d\n" % sha("a")),
    ("bad-state", "a %s state=disabled\n" % sha("a")),
    ("bad-tag", "a %s tags=region=eu,tier\n" % sha("a")),
]


# ------------------------------------------------------------ main

def main():
    for name, text in json_texts():
        write("jsonscan", name, text)
    for name, text in requests():
        write("request", name, text)
        write("translate_request", name, text)
    for name, text in responses():
        write("translate_response", name, text)
    for name, text in streams():
        write("translate_stream", name, text)
        write("sse", name, text)
    for name, path in case_files("front", "input.json"):
        if name.startswith("anthropic-req-"):
            write("front_request", name, read(path))
    for name, data in RESP:
        write("resp", name, data)
    for name, text in KEYS:
        write("keys", name, text)


if __name__ == "__main__":
    main()
