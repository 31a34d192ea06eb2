#!/usr/bin/python3
"""Stand-in LLM provider for Ark's integration tests and demo.

One process (or one in-process ``StubProvider`` instance) answers the real
wire formats of four providers, chosen from the request path:

  OpenAI     POST <prefix>/chat/completions, POST <prefix>/embeddings,
             GET <prefix>/models                   auth: Authorization: Bearer
  Azure      POST <prefix>/openai/deployments/{deployment}/chat/completions
             (and .../embeddings) ?api-version=... auth: api-key
  Anthropic  POST <prefix>/v1/messages             auth: x-api-key + anthropic-version
  Gemini     POST <prefix>/v1beta/models/{model}:generateContent
             POST <prefix>/v1beta/models/{model}:streamGenerateContent[?alt=sse]
                                                    auth: x-goog-api-key or ?key=

Anything else gets OpenAI's 404 "Invalid URL" error.  With ``--key`` only that
key is accepted; without it any non-empty key is (a missing key always fails).

Answers are deterministic: the text is "<name> says: <last user message>".
Prompt tokens are the whitespace-separated words of every message's text plus
the system text; completion tokens are the words of the answer.  Streams carry
one event per word (words keep their trailing whitespace), so streamed and
non-streamed usage always agree.  When the request declares tools and the
last user message contains the word "weather", the answer is a call of the
first tool with arguments {"location": "Paris"} (OpenAI tool_calls, Anthropic
tool_use, Gemini functionCall); it counts as 2 completion tokens (the words of
its JSON arguments, streamed as two argument fragments).

Run:  /usr/bin/python3 tests/stub_provider.py --port 0 [--host H] [--name N]
          [--key K] [--chunk-delay-ms MS] [--tls-cert PEM --tls-key PEM]
          [--verbose]
prints "READY <port>" once listening and runs until SIGTERM/SIGINT.
In-process:  ``stub = StubProvider("acme", key="k"); port = stub.start(); ...;
stub.stop()`` (also a context manager).  Every instance has its own state.
With tls=(certfile, keyfile) (--tls-cert/--tls-key) it speaks HTTPS only,
control API included; the handshake runs as the connection is accepted.
Faults and delays that wait for the client to leave need plain HTTP.

Control API (JSON in and out; never recorded, never faulted):
  GET    /_stub/requests  recorded provider requests in arrival order, each
                          {"seq", "method", "path", "query", "headers"
                          (lower-case names), "body" (parsed JSON, raw text or
                          null), "conn_id", "peer_port", "t_start", "t_end"
                          (epoch seconds; t_end null while in flight),
                          "provider", "status" (HTTP status sent or null),
                          "fault" (kind applied or null), "outcome",
                          "usage" (tokens served, see below, or null)}
  DELETE /_stub/requests  forget the records -> {"cleared": n}
  GET    /_stub/faults    pending fault rules
  POST   /_stub/faults    {"faults": [RULE, ...]} appends rules -> {"faults": [...]}
  DELETE /_stub/faults    drop all rules -> {"faults": []}
  GET    /_stub/config    {"chunk_delay_ms": 0, "first_byte_delay_ms": 0}
  POST   /_stub/config    update some of those keys -> the whole config
  GET    /_stub/stats     {"connections_accepted", "requests",
                          "provider_connections", "tokens": {"prompt",
                          "completion", "responses"}}; lifetime counters.
                          connections_accepted counts every TCP connection
                          (control ones too); provider_connections counts
                          those that carried at least one provider request;
                          tokens sums the usage of every record (below) and
                          responses counts the records that have one.
  POST   /_stub/reset     clear records and faults, restore the start-up
                          config (the stats counters, tokens included, stay)

outcome is null while in flight, then one of: "complete"; "client_gone" (the
client closed the connection before the response was finished; this wins over
"fault:<kind>", e.g. when a gateway times out during slow_first_byte, while
"fault" still names the kind); "fault:<kind>" (a fault rule shaped the
response); "auth_failed"; "bad_request" (validation error, missing Azure
api-version, unknown path).  A record is final before the last byte of its
response is sent, so a client that has read a response can assert on it at
once.  seq and the counters are never reset.  conn_id is assigned when the TCP
connection is accepted, so requests with the same conn_id travelled over one
kept-alive connection.

Token accounting, so that a gateway's metering can be reconciled exactly.  A
record's "usage" is {"prompt_tokens", "completion_tokens"} as served, and the
stats' "tokens" add up those of all records:
  - an answer delivered whole (outcome "complete", or a "slow" /
    "slow_first_byte" fault, which only delay it), in any wire format,
    streamed or not, chat or embeddings: the usage the answer reports (a
    stream that carries no usage report, e.g. OpenAI's without
    stream_options.include_usage, counts what it would have reported; the
    numbers are always the same).  Embeddings have 0 completion tokens.
  - a stream the client left midway (outcome "client_gone"): the prompt
    tokens, plus the completion tokens of the content events written to the
    socket before the disconnect was noticed (one per word piece; a Gemini
    tool call chunk carries 2).  Written is not read: events still in the
    socket buffers count, so a client may have seen fewer.
  - anything else (error answers, auth and validation failures, faults that
    break the answer, a client leaving before a stream's headers or during a
    non-streamed answer): null, nothing counted.
Like the record, the counters are updated before the last byte of the
response is sent.

Faithful details worth knowing: Gemini answers a wrong key with 400
INVALID_ARGUMENT (reason API_KEY_INVALID) and a missing one with 403
PERMISSION_DENIED; Anthropic's message_start reports output_tokens 1, the
final count is in message_delta; Gemini streams a JSON array unless alt=sse;
Azure error bodies are {"error": {"code": "<status>", "message"}} except 400s,
which have OpenAI's shape.

Faults.  A RULE is {"kind": K, <params>, "times": N, "path_contains": S} or the
string "K:ARG1:ARG2"; times defaults to 1 (-1 = forever), path_contains
(matched against path and query) restricts the rule.  A provider request that
passed authentication and validation consumes the first matching rule; if
none matches, a marker [[stub:K:ARG1:ARG2]] in the last user message (for
embeddings: the input) applies to that request alone.  Kinds and parameters,
in positional order:
  status:code[:retry_after]  error with the provider's own body shape (+
                             Retry-After when given)
  slow_first_byte:ms         wait before sending anything, headers included
  slow:ms                    wait between stream events (non-stream: before
                             answering)
  reset                      close the connection with a TCP RST, no response
  abort_mid_stream:n         send the headers and the first n stream events
                             (non-stream: half of the body), then RST
  error_mid_stream:n[:code]  after n events send the provider's in-stream
                             error event (default code 500) and end the stream
                             (non-stream: same as status)
  malformed                  200 with a truncated JSON body (stream: the second
                             event's JSON is cut short, the stream ends
                             normally)
  hang                       send nothing until the client leaves (max 120 s)
The config's chunk_delay_ms (start-up value: --chunk-delay-ms) and
first_byte_delay_ms apply to every request.
"""

import argparse
import base64
import hashlib
import http.server
import json
import random
import re
import select
import signal
import socket
import socketserver
import ssl
import string
import struct
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass

CONTROL_PREFIX = "/_stub/"
HANG_LIMIT_S = 120
CONFIG_KEYS = ("chunk_delay_ms", "first_byte_delay_ms")
WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)
MARKER = re.compile(r"\[\[stub:([^\]]+)\]\]")
TOOL_ARGS = {"location": "Paris"}
TOOL_ARGS_JSON = json.dumps(TOOL_ARGS)
FINGERPRINT = "fp_5f2c1d9e4b"
OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")
OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
REASONS = {529: "Overloaded"}
INTACT_FAULTS = (None, "slow", "slow_first_byte")  # the answer is delivered whole
ID_ALPHABET = string.ascii_letters + string.digits


def _random_id(prefix, length=24):
    return prefix + "".join(random.choices(ID_ALPHABET, k=length))


def _dumps(obj, indent=None):
    if indent:
        return json.dumps(obj, indent=indent)
    return json.dumps(obj, separators=(",", ":"))


def _words(text):
    return len(text.split())


def _pieces(text):
    """Split text into one piece per word; the pieces concatenate to text."""
    return re.findall(r"\s*\S+\s*", text)


def _content_text(content):
    """Text of a message: a string, or the joined "text" of a list of parts.

    Covers OpenAI content parts, Anthropic content blocks and Gemini parts.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part["text"] for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def _embedding(text, as_base64):
    """Eight floats in [-1, 1) derived from the SHA-256 of the text."""
    digest = hashlib.sha256(text.encode()).digest()
    vector = [round(int.from_bytes(digest[4 * i:4 * i + 4], "big") / 2 ** 31 - 1, 6)
              for i in range(8)]
    if as_base64:
        return base64.b64encode(struct.pack("<8f", *vector)).decode()
    return vector


def _recorded_body(raw):
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------
# Faults

_REQUIRED = object()
FAULT_KINDS = {  # kind -> ((param, default), ...) in positional order
    "status": (("code", _REQUIRED), ("retry_after", None)),
    "slow_first_byte": (("ms", _REQUIRED),),
    "slow": (("ms", _REQUIRED),),
    "reset": (),
    "abort_mid_stream": (("n", _REQUIRED),),
    "error_mid_stream": (("n", _REQUIRED), ("code", 500)),
    "malformed": (),
    "hang": (),
}


@dataclass
class Fault:
    kind: str
    params: dict
    times: int = 1
    path_contains: str | None = None

    @classmethod
    def parse(cls, spec):
        """Build a rule from "kind:arg:..." or {"kind": ..., <params>, ...}.

        Raises ValueError with a readable message when the rule is invalid.
        """
        if isinstance(spec, str):
            kind, *args = spec.split(":")
            given, times, path_contains = {}, 1, None
        elif isinstance(spec, dict):
            given = dict(spec)
            kind, args = given.pop("kind", None), []
            times = given.pop("times", 1)
            path_contains = given.pop("path_contains", None)
        else:
            raise ValueError(f"a fault must be a string or an object, not {spec!r}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if len(args) > len(FAULT_KINDS[kind]):
            raise ValueError(f"too many arguments for fault {spec!r}")
        given.update((name, arg) for (name, _), arg in zip(FAULT_KINDS[kind], args) if arg != "")
        params = {}
        for name, default in FAULT_KINDS[kind]:
            value = given.pop(name, default)
            if value is _REQUIRED:
                raise ValueError(f"fault {kind!r} needs {name!r}")
            params[name] = value if value is None else cls._number(kind, name, value)
        if given:
            raise ValueError(f"unknown field(s) for fault {kind!r}: {', '.join(given)}")
        if "code" in params and not 400 <= params["code"] <= 599:
            raise ValueError(f"fault {kind!r} needs an error status code, got {params['code']}")
        if isinstance(times, bool) or not isinstance(times, int) or not (times == -1 or times >= 1):
            raise ValueError(f"times must be -1 or a positive integer, got {times!r}")
        if path_contains is not None and not isinstance(path_contains, str):
            raise ValueError("path_contains must be a string")
        return cls(kind, params, times, path_contains)

    @staticmethod
    def _number(kind, name, value):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"fault {kind!r}: {name} must be an integer, got {value!r}") from None
        if isinstance(value, bool) or number < 0:
            raise ValueError(f"fault {kind!r}: {name} must be a non-negative integer")
        return number

    def to_json(self):
        return {"kind": self.kind, **self.params, "times": self.times,
                "path_contains": self.path_contains}


# --------------------------------------------------------------------------
# Provider dialects

class ApiError(Exception):
    """An error response in some provider's own shape."""

    def __init__(self, status, body, outcome):
        super().__init__(status)
        self.status = status
        self.body = body
        self.outcome = outcome
        self.headers = {}


@dataclass
class Completion:
    """What the stub "generates": an answer text or a call of a tool."""
    prompt_tokens: int
    text: str = ""
    tool_name: str | None = None

    @property
    def pieces(self):
        return _pieces(TOOL_ARGS_JSON if self.tool_name else self.text)

    @property
    def completion_tokens(self):
        return len(self.pieces)


@dataclass
class JsonReply:
    body: dict


@dataclass
class StreamReply:
    """A streamed answer: events are (SSE event name or None, data text)."""
    events: list
    content_type: str
    separator: str = "\n\n"
    json_array: bool = False  # Gemini streams a JSON array without alt=sse
    weights: list | None = None  # completion tokens each event carries

    def weight(self, index):
        """Completion tokens carried by events[index] (0 past the end)."""
        if self.weights is None or index >= len(self.weights):
            return 0
        return self.weights[index]

    def encode(self, events):
        """The body pieces to send, one HTTP chunk each."""
        if self.json_array:
            pieces = [("[" if i == 0 else ",\r\n") + data for i, (_, data) in enumerate(events)]
            return [piece.encode() for piece in pieces] + [b"]"]
        return [((f"event: {name}\n" if name else "") + f"data: {data}{self.separator}").encode()
                for name, data in events]


def _event(name, data):
    return name, data if isinstance(data, str) else _dumps(data)


class ProviderApi:
    """One provider dialect, bound to one request."""
    provider = ""
    json_content_type = "application/json"
    json_indent = None
    stream_error_event = None  # SSE event name of in-stream errors
    invalid_json_message = "Invalid JSON body."

    def __init__(self, stub, params, method, path, query, headers):
        self.stub = stub
        self.params = params
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.last_user_text = ""  # where in-band fault markers are looked for
        self.usage = None  # (prompt, completion) tokens of the answer, once known

    def error_body(self, status, message=None, **fields):
        raise NotImplementedError

    def authenticate(self):
        """Raise ApiError unless the request carries acceptable credentials."""
        raise NotImplementedError

    def handle(self, raw):
        """Validate the request body and return a JsonReply or StreamReply."""
        raise NotImplementedError

    def response_headers(self):
        return {}

    def error(self, status, message=None, outcome=None, **fields):
        if outcome is None:
            outcome = "auth_failed" if status in (401, 403) else "bad_request"
        return ApiError(status, self.error_body(status, message, **fields), outcome)

    def stream_error(self, status):
        return _event(self.stream_error_event, self.error_body(status))

    def key_ok(self, presented):
        return bool(presented) and (self.stub.key is None or presented == self.stub.key)

    def json_object(self, raw):
        try:
            body = json.loads(raw)
        except ValueError:
            raise self.error(400, self.invalid_json_message) from None
        if not isinstance(body, dict):
            raise self.error(400, self.invalid_json_message)
        return body

    def complete(self, texts, last_user_text, tool_name):
        self.last_user_text = last_user_text
        prompt_tokens = sum(_words(text) for text in texts)
        if tool_name and WEATHER.search(last_user_text):
            completion = Completion(prompt_tokens, tool_name=tool_name)
        else:
            completion = Completion(prompt_tokens, text=f"{self.stub.name} says: {last_user_text}")
        self.usage = (completion.prompt_tokens, completion.completion_tokens)
        return completion


class OpenAIApi(ProviderApi):
    provider = "openai"
    invalid_json_message = (
        "We could not parse the JSON body of your request. (HINT: This likely means you "
        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
        "this, please contact us through our help center at help.openai.com.)")
    ERRORS = {  # status -> (message, type, code)
        400: ("Bad request.", "invalid_request_error", None),
        401: ("Incorrect API key provided. You can find your API key at "
              "https://platform.openai.com/account/api-keys.",
              "invalid_request_error", "invalid_api_key"),
        403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
        404: ("The model does not exist or you do not have access to it.",
              "invalid_request_error", "model_not_found"),
        429: ("Rate limit reached for requests per min (RPM). Please try again in 1s.",
              "requests", "rate_limit_exceeded"),
        500: ("The server had an error while processing your request. Sorry about that!",
              "server_error", None),
        503: ("The server is overloaded or not ready yet.", "server_error", None),
    }

    def error_body(self, status, message=None, **fields):
        default = ("Unexpected error.", "server_error" if status >= 500 else "invalid_request_error", None)
        default_message, error_type, code = self.ERRORS.get(status, default)
        error = {"message": message or default_message, "type": error_type, "param": None, "code": code}
        error.update(fields)
        return {"error": error}

    def authenticate(self):
        authorization = self.headers.get("authorization", "")
        if not authorization:
            raise self.error(401, "You didn't provide an API key. You need to provide your API key "
                                  "in an Authorization header using Bearer auth (i.e. "
                                  "Authorization: Bearer YOUR_KEY).", code=None)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self.key_ok(token.strip()):
            raise self.error(401)

    def response_headers(self):
        return {"x-request-id": _random_id("req_", 32), "openai-version": "2020-10-01"}

    def handle(self, raw):
        op = self.params["op"]
        if op == "models":
            return JsonReply({"object": "list", "data": [
                {"id": model, "object": "model", "created": 1715367049, "owned_by": self.stub.name}
                for model in OPENAI_MODELS]})
        body = self.json_object(raw)
        if op == "embeddings":
            return JsonReply(self.embeddings(body))
        return self.chat(body)

    def model(self, body):
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise self.error(400, "you must provide a model parameter")
        return model

    # Azure decorates choices and completions with content filter results.
    def choice_extra(self, has_content):
        return {}

    def completion_extra(self):
        return {}

    def stream_preamble(self):
        return []

    def embeddings(self, body):
        model = self.model(body)
        inputs = body.get("input")
        if inputs is None:
            raise self.error(400, "Missing required parameter: 'input'.", param="input",
                             code="missing_required_parameter")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise self.error(400, "'$.input' is invalid. Please check the API reference: "
                                  "https://platform.openai.com/docs/api-reference.", param="input")
        texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs]
        self.last_user_text = " ".join(texts)
        as_base64 = body.get("encoding_format") == "base64"
        tokens = sum(_words(text) for text in texts)
        self.usage = (tokens, 0)
        return {"object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": _embedding(text, as_base64)}
                         for i, text in enumerate(texts)],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def chat(self, body):
        model = self.model(body)
        messages = body.get("messages")
        if messages is None:
            raise self.error(400, "Missing required parameter: 'messages'.", param="messages",
                             code="missing_required_parameter")
        if not isinstance(messages, list):
            raise self.error(400, "Invalid type for 'messages': expected an array.",
                             param="messages", code="invalid_type")
        if not messages:
            raise self.error(400, "Invalid 'messages': empty array. Expected an array with minimum "
                                  "length 1, but got an empty array instead.",
                             param="messages", code="empty_array")
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in OPENAI_ROLES:
                raise self.error(400, f"Invalid value: '{role}'. Supported values are: 'system', "
                                      "'assistant', 'user', 'function', 'tool', and 'developer'.",
                                 param=f"messages[{i}].role", code="invalid_value")
        stream = body.get("stream") is True
        if "stream_options" in body and not stream:
            raise self.error(400, "The 'stream_options' parameter is only allowed when 'stream' "
                                  "is enabled.", param="stream_options")
        texts = [_content_text(message.get("content")) for message in messages]
        user_texts = [text for message, text in zip(messages, texts) if message["role"] == "user"]
        tool_name = next((tool["function"]["name"] for tool in body.get("tools") or []
                          if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
                          and tool["function"].get("name")), None)
        completion = self.complete(texts, user_texts[-1] if user_texts else "", tool_name)
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return self.chat_stream(model, completion, include_usage)
        return JsonReply(self.chat_response(model, completion))

    @staticmethod
    def usage_body(completion):
        prompt, generated = completion.prompt_tokens, completion.completion_tokens
        return {"prompt_tokens": prompt, "completion_tokens": generated,
                "total_tokens": prompt + generated,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}}

    def chat_response(self, model, completion):
        if completion.tool_name:
            message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                {"id": _random_id("call_"), "type": "function",
                 "function": {"name": completion.tool_name, "arguments": TOOL_ARGS_JSON}}]}
            finish_reason = "tool_calls"
        else:
            message = {"role": "assistant", "content": completion.text, "refusal": None}
            finish_reason = "stop"
        return {"id": _random_id("chatcmpl-"), "object": "chat.completion",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": finish_reason, **self.choice_extra(True)}],
                "usage": self.usage_body(completion), "system_fingerprint": FINGERPRINT,
                **self.completion_extra()}

    def chat_stream(self, model, completion, include_usage):
        head = {"id": _random_id("chatcmpl-"), "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "system_fingerprint": FINGERPRINT}

        def chunk(delta, finish_reason=None, has_content=False):
            body = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish_reason,
                                         **self.choice_extra(has_content)}]}
            if include_usage:
                body["usage"] = None
            return _event(None, body)

        if completion.tool_name:
            first = {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": _random_id("call_"), "type": "function",
                 "function": {"name": completion.tool_name, "arguments": ""}}]}
            deltas = [{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                      for piece in completion.pieces]
            finish_reason = "tool_calls"
        else:
            first = {"role": "assistant", "content": ""}
            deltas = [{"content": piece} for piece in completion.pieces]
            finish_reason = "stop"
        events = self.stream_preamble() + [chunk(first)]
        weights = [0] * len(events) + [1] * len(deltas)
        events += [chunk(delta, has_content=True) for delta in deltas]
        events.append(chunk({}, finish_reason))
        if include_usage:
            events.append(_event(None, {**head, "choices": [], "usage": self.usage_body(completion)}))
        events.append(_event(None, "[DONE]"))
        return StreamReply(events, "text/event-stream; charset=utf-8", weights=weights)


class NotFoundApi(OpenAIApi):
    """Any path no provider serves: OpenAI's "Invalid URL" 404."""
    provider = "unknown"

    def authenticate(self):
        raise self.error(404, f"Invalid URL ({self.method} {self.path})", code=None)


AZURE_FILTERS_OK = {category: {"filtered": False, "severity": "safe"}
                    for category in ("hate", "self_harm", "sexual", "violence")}


class AzureApi(OpenAIApi):
    provider = "azure"
    MESSAGES = {
        401: "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
             "provide a valid key for an active subscription and use a correct regional API "
             "endpoint for your resource.",
        404: "Resource not found",
        429: "Requests to the ChatCompletions_Create Operation under Azure OpenAI API have "
             "exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry "
             "after 1 second.",
        500: "The server had an error while processing your request. Sorry about that!",
        503: "The service is temporarily unable to process your request. Please try again later.",
    }

    def error_body(self, status, message=None, **fields):
        if status == 400:  # validation errors come from the model service, in OpenAI's shape
            return super().error_body(status, message, **fields)
        return {"error": {"code": str(status),
                          "message": message or self.MESSAGES.get(status, "Unexpected error.")}}

    def authenticate(self):
        if not self.query.get("api-version"):
            raise self.error(404, outcome="bad_request")
        if not self.key_ok(self.headers.get("api-key")):
            raise self.error(401)

    def response_headers(self):
        return {**super().response_headers(), "apim-request-id": _random_id("", 32)}

    def model(self, body):
        return self.params["deployment"]

    def choice_extra(self, has_content):
        return {"content_filter_results": AZURE_FILTERS_OK if has_content else {}}

    def completion_extra(self):
        return {"prompt_filter_results": [{"prompt_index": 0,
                                           "content_filter_results": AZURE_FILTERS_OK}]}

    def stream_preamble(self):
        return [_event(None, {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                              **self.completion_extra()})]


class AnthropicApi(ProviderApi):
    provider = "anthropic"
    stream_error_event = "error"
    invalid_json_message = "There was an error parsing the body of your request: invalid JSON."
    ERRORS = {  # status -> (type, message)
        400: ("invalid_request_error", "Bad request."),
        401: ("authentication_error", "invalid x-api-key"),
        403: ("permission_error", "Your API key does not have permission to use the specified resource."),
        404: ("not_found_error", "Not found"),
        413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
        500: ("api_error", "Internal server error"),
        529: ("overloaded_error", "Overloaded"),
    }

    def error_body(self, status, message=None, **fields):
        error_type, default_message = self.ERRORS.get(status, ("api_error", "Internal server error"))
        return {"type": "error", "error": {"type": error_type, "message": message or default_message}}

    def authenticate(self):
        key = self.headers.get("x-api-key")
        if not key:
            raise self.error(401, "x-api-key header is required")
        if not self.key_ok(key):
            raise self.error(401)
        if not self.headers.get("anthropic-version"):
            raise self.error(400, "anthropic-version: header is required")

    def response_headers(self):
        return {"request-id": _random_id("req_01")}

    def handle(self, raw):
        body = self.json_object(raw)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise self.error(400, "model: Field required")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise self.error(400, "max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise self.error(400, "max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise self.error(400, "max_tokens: Input should be greater than or equal to 1")
        messages = body.get("messages")
        if messages is None:
            raise self.error(400, "messages: Field required")
        if not isinstance(messages, list):
            raise self.error(400, "messages: Input should be a valid list")
        if not messages:
            raise self.error(400, "messages: at least one message is required")
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role == "system":
                raise self.error(400, 'messages: Unexpected role "system". The Messages API accepts '
                                      'a top-level `system` parameter, not "system" as an input '
                                      'message role.')
            if role not in ("user", "assistant"):
                raise self.error(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if "content" not in message:
                raise self.error(400, f"messages.{i}.content: Field required")
        system = body.get("system")
        if system is not None and not isinstance(system, (str, list)):
            raise self.error(400, "system: Input should be a valid list")
        texts = [_content_text(system)] + [_content_text(m["content"]) for m in messages]
        user_texts = [text for message, text in zip(messages, texts[1:]) if message["role"] == "user"]
        tool_name = next((tool["name"] for tool in body.get("tools") or []
                          if isinstance(tool, dict) and tool.get("name")), None)
        completion = self.complete(texts, user_texts[-1] if user_texts else "", tool_name)
        if body.get("stream") is True:
            return self.stream(model, completion)
        if completion.tool_name:
            content = [{"type": "tool_use", "id": _random_id("toolu_01"),
                        "name": completion.tool_name, "input": dict(TOOL_ARGS)}]
        else:
            content = [{"type": "text", "text": completion.text}]
        return JsonReply(self.message(model, content, self.stop_reason(completion), completion,
                                      completion.completion_tokens))

    @staticmethod
    def stop_reason(completion):
        return "tool_use" if completion.tool_name else "end_turn"

    @staticmethod
    def message(model, content, stop_reason, completion, output_tokens):
        return {"id": _random_id("msg_01"), "type": "message", "role": "assistant",
                "model": model, "content": content, "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": completion.prompt_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                          "output_tokens": output_tokens}}

    def stream(self, model, completion):
        if completion.tool_name:
            block = {"type": "tool_use", "id": _random_id("toolu_01"),
                     "name": completion.tool_name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece}
                      for piece in completion.pieces]
        else:
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in completion.pieces]
        # message_start reports output_tokens 1, as the real API does; the
        # cumulative total is in message_delta.
        events = [
            _event("message_start", {"type": "message_start",
                                     "message": self.message(model, [], None, completion, 1)}),
            _event("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": block}),
            _event("ping", {"type": "ping"}),
        ]
        weights = [0] * len(events) + [1] * len(deltas)
        events += [_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": delta}) for delta in deltas]
        events += [
            _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": self.stop_reason(completion),
                                               "stop_sequence": None},
                                     "usage": {"output_tokens": completion.completion_tokens}}),
            _event("message_stop", {"type": "message_stop"}),
        ]
        return StreamReply(events, "text/event-stream; charset=utf-8", weights=weights)


class GeminiApi(ProviderApi):
    provider = "gemini"
    json_content_type = "application/json; charset=UTF-8"
    json_indent = 2
    invalid_json_message = "Invalid JSON payload received. Unexpected token."
    STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
    MESSAGES = {
        400: "Request contains an invalid argument.",
        401: "Request had invalid authentication credentials.",
        403: "The caller does not have permission",
        404: "Requested entity was not found.",
        429: "Resource has been exhausted (e.g. check quota).",
        500: "An internal error has occurred. Please retry or report in "
             "https://developers.generativeai.google/guide/troubleshooting",
        503: "The model is overloaded. Please try again later.",
        504: "Deadline expired before operation could complete.",
    }

    def error_body(self, status, message=None, **fields):
        error = {"code": status, "message": message or self.MESSAGES.get(status, "Unknown error."),
                 "status": self.STATUSES.get(status, "UNKNOWN")}
        error.update(fields)
        return {"error": error}

    def authenticate(self):
        key = self.headers.get("x-goog-api-key") or self.query.get("key")
        if not key:
            raise self.error(403, "Method doesn't allow unregistered callers (callers without "
                                  "established identity). Please use API key or other form of "
                                  "API consumer identity to call this API.")
        if not self.key_ok(key):  # Google answers a wrong key with 400, not 401
            raise self.error(400, "API key not valid. Please pass a valid API key.",
                             outcome="auth_failed", details=[{
                                 "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                 "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                                 "metadata": {"service": "generativelanguage.googleapis.com"}}])

    def handle(self, raw):
        body = self.json_object(raw)
        contents = body.get("contents")
        if not contents:
            raise self.error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        if not isinstance(contents, list) or not all(isinstance(c, dict) for c in contents):
            raise self.error(400, "Invalid value at 'contents', expected a list of Content objects.")
        for i, content in enumerate(contents):
            if content.get("role", "user") not in ("user", "model"):
                raise self.error(400, "Please use a valid role: user, model.")
            if not content.get("parts"):
                raise self.error(400, f"* GenerateContentRequest.contents[{i}].parts: "
                                      "contents.parts must not be empty.\n")
        system = body.get("systemInstruction", body.get("system_instruction"))
        texts = [_content_text(system.get("parts")) if isinstance(system, dict) else ""]
        texts += [_content_text(content["parts"]) for content in contents]
        user_texts = [text for content, text in zip(contents, texts[1:])
                      if content.get("role", "user") == "user"]
        tool_name = next((declaration.get("name")
                          for tool in body.get("tools") or [] if isinstance(tool, dict)
                          for declaration in (tool.get("functionDeclarations")
                                              or tool.get("function_declarations") or [])
                          if isinstance(declaration, dict)), None)
        completion = self.complete(texts, user_texts[-1] if user_texts else "", tool_name)
        model = self.params["model"]
        response_id = _random_id("", 22)
        if self.params["op"] == "generateContent":
            if completion.tool_name:
                parts = [{"functionCall": {"name": completion.tool_name, "args": dict(TOOL_ARGS)}}]
            else:
                parts = [{"text": completion.text}]
            return JsonReply(self.chunk(parts, model, response_id, completion))
        if completion.tool_name:
            chunks = [self.chunk([{"functionCall": {"name": completion.tool_name,
                                                    "args": dict(TOOL_ARGS)}}],
                                 model, response_id, completion)]
            weights = [completion.completion_tokens]
        else:
            pieces = completion.pieces or [""]
            chunks = [self.chunk([{"text": piece}], model, response_id,
                                 completion if i == len(pieces) - 1 else None)
                      for i, piece in enumerate(pieces)]
            weights = [1 if piece else 0 for piece in pieces]
        events = [_event(None, chunk) for chunk in chunks]
        if self.query.get("alt") == "sse":
            return StreamReply(events, "text/event-stream", separator="\r\n\r\n",
                               weights=weights)
        return StreamReply(events, self.json_content_type, json_array=True, weights=weights)

    @staticmethod
    def chunk(parts, model, response_id, final):
        """A GenerateContentResponse; `final` (the Completion) marks the last one."""
        candidate = {"content": {"parts": parts, "role": "model"}}
        response = {"candidates": [candidate]}
        if final:
            candidate["finishReason"] = "STOP"
            prompt, generated = final.prompt_tokens, final.completion_tokens
            response["usageMetadata"] = {
                "promptTokenCount": prompt, "candidatesTokenCount": generated,
                "totalTokenCount": prompt + generated,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
        candidate["index"] = 0
        response.update(modelVersion=model, responseId=response_id)
        return response


_PREFIX = r"(?:/.*)?"
ROUTES = [  # (method, path pattern, dialect); first match wins
    ("POST", re.compile(_PREFIX + r"/openai/deployments/(?P<deployment>[^/]+)"
                                  r"/(?P<op>chat/completions|embeddings)"), AzureApi),
    ("POST", re.compile(_PREFIX + r"/v1(?:beta|alpha)?/models/(?P<model>[^/:]+)"
                                  r":(?P<op>generateContent|streamGenerateContent)"), GeminiApi),
    ("POST", re.compile(_PREFIX + r"/v1/messages"), AnthropicApi),
    ("POST", re.compile(_PREFIX + r"/(?P<op>chat/completions|embeddings)"), OpenAIApi),
    ("GET", re.compile(r"(?!.*/v1beta/)" + _PREFIX + r"/(?P<op>models)"), OpenAIApi),
]


def _route(method, path):
    method = "GET" if method == "HEAD" else method
    for route_method, pattern, api_class in ROUTES:
        match = pattern.fullmatch(path)
        if match and method == route_method:
            return api_class, match.groupdict()
    return NotFoundApi, {}


# --------------------------------------------------------------------------
# HTTP plumbing

class ClientGone(Exception):
    """The client closed the connection while we still had something to send."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ArkStubProvider/1.0"

    def setup(self):
        super().setup()
        self.stub = self.server.stub
        self.conn_id = self.server.conn_id(self.request)
        self.record = None  # the record of the provider request being served
        self.outcome = None
        self.served_usage = None   # (prompt, completion) the response delivers
        self.partial_usage = None  # what a stream has delivered so far

    def log_message(self, format, *args):
        if self.stub.verbose:
            sys.stderr.write(f"[{self.stub.name} #{self.conn_id}] {format % args}\n")

    def _dispatch(self):
        target = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(target.query, keep_blank_values=True))
        try:
            if target.path.startswith(CONTROL_PREFIX):
                self._serve_control(target.path)
            else:
                self._serve_provider(target.path, query)
        except ClientGone:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_DELETE = _dispatch

    # -- low-level I/O --------------------------------------------------

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _write(self, data):
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise ClientGone() from exc

    def _write_chunk(self, data):
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _start_response(self, status, headers):
        if self.record is not None:
            self.stub.update_record(self.record, status=status)
        try:
            self.send_response(status, REASONS.get(status))
            for name, value in headers.items():
                self.send_header(name, str(value))
            self.end_headers()
        except OSError as exc:
            raise ClientGone() from exc

    def _seal_record(self):
        """Record the outcome and t_end.

        Called before the last byte of a response leaves, so that a client
        that has read a whole response always finds its record final.
        """
        if self.record is not None:
            self.stub.seal_record(self.record, self.outcome, self.served_usage)

    def _send_body(self, status, body, content_type, headers=None):
        self._seal_record()
        self._start_response(status, {"Content-Type": content_type,
                                      "Content-Length": len(body), **(headers or {})})
        if self.command != "HEAD":
            self._write(body)

    def _send_control(self, status, obj):
        self._send_body(status, _dumps(obj).encode(), "application/json")

    def _pause(self, seconds):
        """Wait, but raise ClientGone as soon as the client closes the connection."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], remaining)
            if not readable:
                return
            try:
                if not self.connection.recv(1, socket.MSG_PEEK):
                    raise ClientGone()
            except OSError as exc:
                raise ClientGone() from exc
            time.sleep(remaining)  # a pipelined request is waiting: EOF can't be seen
            return

    def _reset_connection(self):
        """Close the connection with an RST (SO_LINGER on, timeout 0)."""
        self._seal_record()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        socket.close(self.connection.detach())

    # -- control API ----------------------------------------------------

    def _serve_control(self, path):
        raw = self._read_body()
        endpoint = (self.command if self.command != "HEAD" else "GET", path.rstrip("/"))
        stub = self.stub
        try:
            if endpoint == ("GET", "/_stub/requests"):
                self._send_control(200, stub.requests())
            elif endpoint == ("DELETE", "/_stub/requests"):
                self._send_control(200, {"cleared": stub.clear_requests()})
            elif endpoint == ("GET", "/_stub/faults"):
                self._send_control(200, stub.faults())
            elif endpoint == ("POST", "/_stub/faults"):
                rules = json.loads(raw or b"null")
                if not isinstance(rules, dict) or not isinstance(rules.get("faults"), list):
                    raise ValueError('expected {"faults": [...]}')
                self._send_control(200, {"faults": stub.add_faults(rules["faults"])})
            elif endpoint == ("DELETE", "/_stub/faults"):
                stub.clear_faults()
                self._send_control(200, {"faults": []})
            elif endpoint == ("GET", "/_stub/config"):
                self._send_control(200, stub.config())
            elif endpoint == ("POST", "/_stub/config"):
                changes = json.loads(raw or b"null")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                self._send_control(200, stub.configure(**changes))
            elif endpoint == ("GET", "/_stub/stats"):
                self._send_control(200, stub.stats())
            elif endpoint == ("POST", "/_stub/reset"):
                stub.reset()
                self._send_control(200, {"ok": True})
            else:
                self._send_control(404, {"error": f"no control endpoint {self.command} {path}"})
        except (ValueError, TypeError) as exc:
            self._send_control(400, {"error": str(exc)})

    # -- provider requests ----------------------------------------------

    def _serve_provider(self, path, query):
        t_start = time.time()
        raw = self._read_body()
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        api_class, params = _route(self.command, path)
        api = api_class(self.stub, params, self.command, path, query, headers)
        self.record = self.stub.open_record(
            method=self.command, path=path, query=query, headers=headers,
            body=_recorded_body(raw), conn_id=self.conn_id, peer_port=self.client_address[1],
            t_start=t_start, provider=api.provider)
        self.outcome = "stub_error"  # stays so only if _answer itself fails
        self.served_usage = self.partial_usage = None
        try:
            self._answer(api, raw)
        except ClientGone:
            self.outcome = "client_gone"
            self.served_usage = self.partial_usage
            self.close_connection = True
        finally:
            if self.record["t_end"] is None or self.outcome == "client_gone":
                self._seal_record()
            self.record = None

    def _answer(self, api, raw):
        """Respond to one provider request, setting self.outcome."""
        try:
            api.authenticate()
            reply = api.handle(raw)
            fault = self.stub.take_fault(self.path)
            if fault is None and (marker := MARKER.search(api.last_user_text)):
                try:
                    fault = Fault.parse(marker.group(1))
                except ValueError as exc:
                    raise api.error(400, f"stub fault marker: {exc}") from None
        except ApiError as error:
            self.outcome = error.outcome
            self._pause(self.stub.config()["first_byte_delay_ms"] / 1000)
            self._send_error(api, error)
            return
        kind = fault.kind if fault else None
        self.outcome = f"fault:{kind}" if kind else "complete"
        self.stub.update_record(self.record, fault=kind)
        first_byte_ms = self.stub.config()["first_byte_delay_ms"]
        if kind == "slow_first_byte":
            first_byte_ms += fault.params["ms"]
        self._pause(first_byte_ms / 1000)
        streaming = isinstance(reply, StreamReply)
        if kind == "reset":
            self._reset_connection()
        elif kind == "hang":
            try:
                self._pause(HANG_LIMIT_S)
            except ClientGone:
                pass
            self.close_connection = True
        elif kind == "status" or (kind == "error_mid_stream" and not streaming):
            error = api.error(fault.params["code"])
            if fault.params.get("retry_after") is not None:
                error.headers["Retry-After"] = fault.params["retry_after"]
            self._send_error(api, error)
        elif streaming:
            self._send_stream(api, reply, fault)
        else:
            self._send_json(api, reply, fault)

    def _send_error(self, api, error):
        self._send_body(error.status, _dumps(error.body, api.json_indent).encode(),
                        api.json_content_type, {**api.response_headers(), **error.headers})

    def _send_json(self, api, reply, fault):
        kind = fault.kind if fault else None
        if kind == "slow":
            self._pause(fault.params["ms"] / 1000)
        body = _dumps(reply.body, api.json_indent).encode()
        if kind == "malformed":
            body = body[:len(body) // 2]
        if kind == "abort_mid_stream":
            self._start_response(200, {"Content-Type": api.json_content_type,
                                       "Content-Length": len(body), **api.response_headers()})
            self._write(body[:len(body) // 2])
            self._reset_connection()
            return
        if kind in INTACT_FAULTS:
            self.served_usage = api.usage
        self._send_body(200, body, api.json_content_type, api.response_headers())

    def _send_stream(self, api, reply, fault):
        kind = fault.kind if fault else None
        events = list(reply.events)
        if kind == "malformed":
            index = min(1, len(events) - 1)
            name, data = events[index]
            events[index] = (name, data[:len(data) // 2])
        elif kind == "error_mid_stream":
            events = events[:fault.params["n"]] + [api.stream_error(fault.params["code"])]
        delay_ms = fault.params["ms"] if kind == "slow" else self.stub.config()["chunk_delay_ms"]
        abort_after = fault.params["n"] if kind == "abort_mid_stream" else None
        self._start_response(200, {"Content-Type": reply.content_type, "Cache-Control": "no-cache",
                                   "Transfer-Encoding": "chunked", **api.response_headers()})
        prompt_tokens, written = (api.usage or (0, 0))[0], 0
        self.partial_usage = (prompt_tokens, 0)
        for i, piece in enumerate(reply.encode(events)):
            if i == abort_after:
                break
            if i and delay_ms:
                self._pause(delay_ms / 1000)
            self._write_chunk(piece)
            written += reply.weight(i)
            self.partial_usage = (prompt_tokens, written)
        if abort_after is not None:
            self._reset_connection()
        else:
            if kind in INTACT_FAULTS:
                self.served_usage = api.usage
            self._seal_record()
            self._write(b"0\r\n\r\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, stub):
        self.stub = stub
        self.connections_accepted = 0
        self._lock = threading.Lock()
        self._open = {}  # accepted socket -> conn_id
        super().__init__(address, _Handler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name, which can stall
        # without DNS; it is only used for CGI, so skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        with self._lock:
            self.connections_accepted += 1
            self._open[request] = self.connections_accepted
        super().process_request(request, client_address)

    def conn_id(self, request):
        with self._lock:
            return self._open[request]

    def shutdown_request(self, request):
        with self._lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def close_connections(self):
        """Wake up every handler by shutting its socket down."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # OSError: the client vanished
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------
# The stub itself

class StubProvider:
    """A stub provider server with its own records, fault queue and config."""

    def __init__(self, name="stub", key=None, host="127.0.0.1", port=0, chunk_delay_ms=0,
                 verbose=False, tls=None):
        self.name = name
        self.key = key
        self.tls = tls  # (certfile, keyfile) or None
        self.verbose = verbose
        self._address = (host, port)
        self._defaults = {"chunk_delay_ms": chunk_delay_ms, "first_byte_delay_ms": 0}
        self._config = dict(self._defaults)
        self._lock = threading.Lock()
        self._records = []
        self._rules = []
        self._seq = 0
        self._provider_conns = set()
        self._tokens = {"prompt": 0, "completion": 0, "responses": 0}
        self._server = None
        self._thread = None

    def start(self):
        """Listen and serve in a background thread; return the port."""
        self._server = _Server(self._address, self)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"stub-{self.name}", daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- records ----------------------------------------------------------

    def open_record(self, **fields):
        with self._lock:
            self._seq += 1
            self._provider_conns.add(fields["conn_id"])
            record = {"seq": self._seq, **fields, "t_end": None, "status": None,
                      "fault": None, "outcome": None, "usage": None}
            self._records.append(record)
        return record

    def update_record(self, record, **fields):
        with self._lock:
            record.update(fields)

    def seal_record(self, record, outcome, usage):
        """Finish a record: outcome, t_end and the tokens served, if any.

        A record may be sealed twice (complete, then client_gone when the
        last bytes could not be sent); the token totals follow the last seal.
        """
        new = None if usage is None else {"prompt_tokens": usage[0],
                                          "completion_tokens": usage[1]}
        with self._lock:
            old = record["usage"]
            for sign, counted in ((-1, old), (1, new)):
                if counted is not None:
                    self._tokens["prompt"] += sign * counted["prompt_tokens"]
                    self._tokens["completion"] += sign * counted["completion_tokens"]
                    self._tokens["responses"] += sign
            record.update(outcome=outcome, t_end=time.time(), usage=new)

    def requests(self):
        with self._lock:
            return [dict(record) for record in self._records]

    def clear_requests(self):
        with self._lock:
            cleared = len(self._records)
            self._records.clear()
        return cleared

    def stats(self):
        with self._lock:
            return {"connections_accepted": self._server.connections_accepted,
                    "requests": self._seq,
                    "provider_connections": len(self._provider_conns),
                    "tokens": dict(self._tokens)}

    # -- faults -----------------------------------------------------------

    def add_faults(self, specs):
        """Append fault rules (all or none); return the pending rules."""
        rules = [Fault.parse(spec) for spec in specs]
        with self._lock:
            self._rules.extend(rules)
        return self.faults()

    def faults(self):
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def clear_faults(self):
        with self._lock:
            self._rules.clear()

    def take_fault(self, target):
        """Consume the first rule matching the request target, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.path_contains is None or rule.path_contains in target:
                    if rule.times > 0:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
                    return Fault(rule.kind, dict(rule.params))
        return None

    # -- config -----------------------------------------------------------

    def config(self):
        with self._lock:
            return dict(self._config)

    def configure(self, **changes):
        for key, value in changes.items():
            if key not in CONFIG_KEYS:
                raise ValueError(f"unknown config key {key!r}; known: {', '.join(CONFIG_KEYS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
        with self._lock:
            self._config.update(changes)
            return dict(self._config)

    def reset(self):
        with self._lock:
            self._records.clear()
            self._rules.clear()
            self._config = dict(self._defaults)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Stand-in LLM provider (OpenAI, Azure OpenAI, "
                                                 "Anthropic, Gemini wire formats).")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default="stub", help='answers read "<name> says: ..."')
    parser.add_argument("--key", help="the only API key accepted (default: any)")
    parser.add_argument("--chunk-delay-ms", type=int, default=0,
                        help="default delay between stream events")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")

    class Shutdown(Exception):
        pass

    def request_shutdown(signum, frame):
        raise Shutdown()

    signal.signal(signal.SIGTERM, request_shutdown)
    signal.signal(signal.SIGINT, request_shutdown)
    stub = StubProvider(args.name, args.key, host=args.host, port=args.port,
                        chunk_delay_ms=args.chunk_delay_ms, verbose=args.verbose,
                        tls=(args.tls_cert, args.tls_key) if args.tls_cert else None)
    try:
        port = stub.start()
        print(f"READY {port}", flush=True)
        while True:
            signal.pause()
    except Shutdown:
        pass
    finally:
        stub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
