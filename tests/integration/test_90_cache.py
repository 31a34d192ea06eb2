"""90: the semantic cache end to end: real httpd + mod_ark, real
ark-cached, real redis-server, the stub provider."""
import json
import time

from ark_harness import sse_events
from conftest import openai_provider


def cache_gateway(make_gateway, stub, cached, extra_loc="", allow=(),
                  ark_extra=""):
    ark = (openai_provider(stub)
           + "ArkModel m stub gpt-4o-mini\nArkModel other stub gpt-4o\n"
           + "ArkCacheServer 127.0.0.1:%d\n" % cached.port
           + "ArkCacheTimeout connect=200ms call=2s\n" + ark_extra)
    gw = make_gateway(ark=ark, location="ArkCache on " + extra_loc,
                      start=False, allow=allow)
    gw.key = gw.create_key("alice", tenant="acme")
    gw.key2 = gw.create_key("bob", tenant="globex")
    gw.start()
    return gw


def ask(gw, text, key=None, model="m", stream=False, headers=None, **extra):
    body = {"model": model, "temperature": 0,
            "messages": [{"role": "system", "content": "Be concise."},
                         {"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    body.update(extra)
    return gw.request("POST", "/v1/chat/completions", body, key or gw.key,
                      headers=headers)


def answer(body):
    return json.loads(body)["choices"][0]["message"]["content"]


def test_90_01_miss_then_exact_and_near_duplicate_hits(make_gateway, stub,
                                                       redis_server,
                                                       make_cached):
    cached = make_cached(redis_server)
    gw = cache_gateway(make_gateway, stub, cached)
    st, h, body = ask(gw, "What is the capital of France?")
    assert st == 200 and h["x-ark-cache"] == "miss"
    first = answer(body)
    time.sleep(0.3)                      # the store follows the answer
    st, h, body = ask(gw, "What is the capital of France?")
    assert st == 200 and h["x-ark-cache"] == "hit"
    assert h["x-ark-cache-similarity"] == "1.0000"
    assert answer(body) == first
    st, h, body = ask(gw, "what is the capital of france")
    assert h["x-ark-cache"] == "hit", h
    assert answer(body) == first
    st, h, body = ask(gw, "Please, what is the capital of France?")
    assert h["x-ark-cache"] == "hit", h
    assert 0.8 < float(h["x-ark-cache-similarity"]) <= 1.0
    assert len(stub.requests()) == 1     # every hit spared the upstream
    log = gw.access_entries(wait_for=4)
    assert [e["cache"] for e in log] == ["miss", "hit", "hit", "hit"]


def test_90_02_never_a_wrong_or_foreign_hit(make_gateway, stub, redis_server,
                                            make_cached):
    cached = make_cached(redis_server)
    gw = cache_gateway(make_gateway, stub, cached,
                       extra_loc="max-temperature=0.5")
    ask(gw, "What is the capital of France?")
    time.sleep(0.3)
    cases = [
        dict(text="What is the capital of Spain?"),          # entity swap
        dict(text="What is the capital of France?", key=gw.key2),  # tenant
        dict(text="What is the capital of France?", model="other"),
        dict(text="What is the capital of France?", temperature=0.2),
        dict(text="What is not the capital of France?"),      # negation
    ]
    for c in cases:
        st, h, body = ask(gw, **c)
        assert st == 200 and h["x-ark-cache"] == "miss", (c, h)
    assert len(stub.requests()) == 1 + len(cases)
    # too hot to cache at all
    st, h, _ = ask(gw, "What is the capital of France?", temperature=0.9)
    assert h["x-ark-cache"] == "skip"


def test_90_03_ttl_expiry(make_gateway, stub, redis_server, make_cached):
    cached = make_cached(redis_server)
    gw = cache_gateway(make_gateway, stub, cached, extra_loc="ttl=2s")
    ask(gw, "Name three primary colours.")
    time.sleep(0.3)
    assert ask(gw, "Name three primary colours.")[1]["x-ark-cache"] == "hit"
    time.sleep(2.6)
    assert ask(gw, "Name three primary colours.")[1]["x-ark-cache"] == \
        "miss"
    assert int(cached.info()["expirations"]) >= 1


def test_90_04_stream_replay_and_stream_store(make_gateway, stub,
                                              redis_server, make_cached):
    cached = make_cached(redis_server)
    gw = cache_gateway(make_gateway, stub, cached)
    st, h, body = ask(gw, "Explain HTTP keep-alive briefly.")
    time.sleep(0.3)
    st, h, raw = ask(gw, "Explain HTTP keep-alive briefly.", stream=True,
                     stream_options={"include_usage": True})
    assert h["x-ark-cache"] == "hit"
    assert h["content-type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c["choices"])
    assert text == answer(body)
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    # an answer that was streamed is stored too, and served plain
    st, h, raw = ask(gw, "List the planets of the solar system.",
                     stream=True)
    assert h["x-ark-cache"] == "miss"
    time.sleep(0.3)
    st, h, body = ask(gw, "List the planets of the solar system.")
    assert h["x-ark-cache"] == "hit"
    assert answer(body) == \
        "stub says: List the planets of the solar system."
    assert len(stub.requests()) == 2
    # the client did not ask for usage, but the upstream counted the
    # stream (mod_ark asks it to): the stored answer carries those counts
    usage = json.loads(body)["usage"]
    sent = stub.requests()[1]
    assert sent["body"]["stream_options"] == {"include_usage": True}
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == (usage["prompt_tokens"]
                                     + usage["completion_tokens"])


def test_90_05_bypass_headers(make_gateway, stub, redis_server, make_cached):
    cached = make_cached(redis_server)
    gw = cache_gateway(make_gateway, stub, cached)
    st, h, _ = ask(gw, "What is 2+2?", headers={"Cache-Control": "no-store"})
    assert h["x-ark-cache"] == "miss"
    time.sleep(0.3)
    assert ask(gw, "What is 2+2?")[1]["x-ark-cache"] == "miss"  # not stored
    time.sleep(0.3)
    st, h, _ = ask(gw, "What is 2+2?", headers={"Cache-Control": "no-cache"})
    assert h["x-ark-cache"] == "bypass"   # stored, but not looked up
    assert ask(gw, "What is 2+2?")[1]["x-ark-cache"] == "hit"
    assert len(stub.requests()) == 3


def test_90_06_restart_keeps_entries_and_replicas_share(
        make_gateway, stub, redis_server, make_cached):
    c1 = make_cached(redis_server)
    gw1 = cache_gateway(make_gateway, stub, c1)
    ask(gw1, "Who wrote Hamlet?")
    time.sleep(0.3)
    # a second replica on the same Redis serves it within a second
    c2 = make_cached(redis_server)
    gw2 = cache_gateway(make_gateway, stub, c2)
    ask(gw1, "Who painted the Mona Lisa?")
    time.sleep(1.0)
    same_tenant = gw2.create_key("carol", tenant="acme")
    gw2.graceful()
    for q in ("Who wrote Hamlet?", "Who painted the Mona Lisa?"):
        st, h, _ = ask(gw2, q, key=same_tenant)
        assert h["x-ark-cache"] == "hit", (q, h)
    # a restarted ark-cached rebuilds from Redis
    c1.stop()
    c1.start()
    st, h, _ = ask(gw1, "Who wrote Hamlet?")
    assert h["x-ark-cache"] == "hit"
    assert len(stub.requests()) == 2


def test_90_07_redis_down_keeps_serving_l1(make_gateway, stub, redis_server,
                                           make_cached):
    cached = make_cached(redis_server)
    gw = cache_gateway(make_gateway, stub, cached)
    ask(gw, "What does DNS stand for?")
    time.sleep(0.3)
    redis_server.stop()
    assert ask(gw, "What does DNS stand for?")[1]["x-ark-cache"] == "hit"
    ask(gw, "What does TCP stand for?")        # stored in L1 only
    time.sleep(0.3)
    assert ask(gw, "What does TCP stand for?")[1]["x-ark-cache"] == "hit"
    assert cached.info()["redis_up"] == "0"
    redis_server.start()
    time.sleep(0.5)
    ask(gw, "What does UDP stand for?")
    time.sleep(0.5)
    assert ask(gw, "What does UDP stand for?")[1]["x-ark-cache"] == "hit"
    assert cached.info()["redis_up"] == "1"


def test_90_08_cache_down_fails_open(make_gateway, stub, make_cached):
    cached = make_cached(None)
    gw = cache_gateway(make_gateway, stub, cached,
                       ark_extra="ArkCacheBreaker failures=2 cooldown=30s\n",
                       allow=[r"ARK0005[23]: cache (lookup|store) failed"])
    cached.stop()
    for i in range(5):
        st, h, body = ask(gw, "question %d" % i)
        assert st == 200, body
        assert answer(body) == "stub says: question %d" % i
    # the first failures are errors, then the breaker stops asking
    kinds = [e["cache"] for e in gw.access_entries(wait_for=5)]
    assert kinds[0] == "error" and kinds[-1] == "skip", kinds
    warn = [l for l in gw.error_log().splitlines() if "ARK00052" in l]
    assert len(warn) == 1                      # logged once per interval


def test_90_09_redis_cli_speaks_to_ark_cached(make_cached):
    cached = make_cached(None)
    assert cached.cli("PING").strip() == "PONG"
    assert cached.cli("ARK.STORE", "ns", "hello world", "payload",
                      "TTL", "60").strip().isdigit()
    out = cached.cli("ARK.LOOKUP", "ns", "hello world").split("\n")
    assert out[0] == "payload" and out[1] == "1.0000"
    assert cached.cli("ARK.LOOKUP", "other-ns", "hello world").strip() == ""
    assert "# Cache" in cached.cli("INFO")


def test_90_10_store_without_access_log(make_gateway, stub, make_cached):
    """Storing does not depend on ArkAccessLog being configured."""
    cached = make_cached(None)
    gw = make_gateway(ark=openai_provider(stub) + "ArkModel m stub\n"
                      "ArkCacheServer 127.0.0.1:%d\n" % cached.port,
                      location="ArkCache on", start=False, access_log=False)
    gw.key = gw.create_key("alice")
    gw.start()
    ask(gw, "Is the cache independent of the access log?")
    time.sleep(0.3)
    st, h, _ = ask(gw, "Is the cache independent of the access log?")
    assert h["x-ark-cache"] == "hit"
    assert len(stub.requests()) == 1


def namespace(tenant, alias, request):
    """The namespace mod_ark computes (docs/caching.md): SHA-256 of the
    tenant, endpoint, alias, text mode and the canonical JSON of the
    request without the embedded text (default mode: the last user
    message)."""
    import hashlib
    rest = {k: v for k, v in request.items()
            if k not in ("model", "messages", "stream", "stream_options",
                         "user", "metadata", "store", "service_tier")}
    rest["messages"] = request["messages"][:-1]
    canon = json.dumps(rest, sort_keys=True, separators=(",", ":"),
                       ensure_ascii=False)
    material = "ark-cache-ns-v1\n%s\nchat.completions\n%s\n0\n%s" % (
        tenant, alias, canon)
    return hashlib.sha256(material.encode()).hexdigest()


def test_90_11_unusable_cached_payload_is_a_miss(make_gateway, stub,
                                                  make_cached):
    """A payload in ark-cached that is not a JSON object (written there by
    something else) is never sent to a client: the request is answered
    by the provider and marked a miss. A well-formed payload stored the
    same way is served, which shows the namespace used is the right one."""
    cached = make_cached(None)
    gw = cache_gateway(make_gateway, stub, cached,
                       allow=[r"ARK00051: ark-cached returned an unusable"])
    req = {"model": "m", "temperature": 0,
           "messages": [{"role": "system", "content": "Be concise."},
                        {"role": "user", "content": "Planted question?"}]}
    ns = namespace("acme", "m", req)
    good = json.dumps({"id": "chatcmpl-planted", "object": "chat.completion",
                       "created": 1, "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant",
                                                "content": "planted"}}],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 1,
                                 "total_tokens": 8}})
    assert cached.cli("ARK.STORE", ns, "Planted question?", good,
                      "TTL", "60").strip().isdigit()
    st, h, body = ask(gw, "Planted question?")
    assert st == 200 and h["x-ark-cache"] == "hit"
    assert answer(body) == "planted"
    assert len(stub.requests()) == 0

    assert cached.cli("ARK.STORE", ns, "Broken question?",
                      '{"id": "chatcmpl-broken", "choices": [',
                      "TTL", "60").strip().isdigit()
    st, h, body = ask(gw, "Broken question?")
    assert st == 200 and h["x-ark-cache"] == "miss", h
    assert json.loads(body)["id"] != "chatcmpl-broken"
    assert json.loads(body)["choices"][0]["message"]["content"]
    assert len(stub.requests()) == 1
    log = gw.access_entries(wait_for=2)
    assert [e["cache"] for e in log] == ["hit", "miss"]
    assert len(gw.error_lines(r"ARK00051")) == 1
    # the hit's usage was read from the cached text (without a tree)
    assert log[0]["prompt_tokens"] == 7 and log[0]["total_tokens"] == 8
