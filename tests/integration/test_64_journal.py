"""64: the in-flight journal: a request the node dies serving is billed.

A slow streamed request is sent upstream; while the stub is serving it
the whole httpd process group is SIGKILLed (no process is left to settle
it). httpd is started again on the same root (same journal file,
DefaultRuntimeDir/ark-journal): its start bills the orphan at the
estimate, under the done-key with the request's trace id; a second
restart bills nothing more. The real httpd, the real redis-server and the
stub provider only.
"""
import http.client
import json
import os
import signal
import threading
import time

from conftest import openai_provider

PREFIX = "ark:"
MAX_TOKENS = 40


def usage(redis, scope, name):
    total = {}
    for k in redis.keys("%s%s:%s:u:*" % (PREFIX, scope, name)):
        if len(k.rsplit(":", 1)[1]) == 8:          # the day hashes
            for f, v in redis.hgetall(k).items():
                total[f] = total.get(f, 0) + int(v)
    return total


def wait_usage(redis, scope, name, field, want, timeout=10):
    """The usage once field reaches want (settlement follows the answer:
    it runs in the log phase)."""
    deadline = time.time() + timeout
    while True:
        u = usage(redis, scope, name)
        if u.get(field, 0) >= want or time.time() > deadline:
            return u
        time.sleep(0.05)


def journal_gateway(make_gateway, stub, redis, extra=""):
    ark = openai_provider(stub) + (
        "ArkModel m stub gpt-4o price=2/8\n"
        "ArkGovernRedis 127.0.0.1:%d\n"
        "ArkGovernTimeout 1s\n" % redis.port) + extra + """
<Location /ark/metrics>
    SetHandler ark-metrics
</Location>
"""
    gw = make_gateway(ark=ark, start=False,
                      allow=[r"ARK00105", r"AH00\d+"])
    gw.popen_extra = {"start_new_session": True}
    return gw


def slow_stream(gw, key, text, result):
    """Sends a streamed chat request and reads until the connection dies;
    result gets the trace id and the bytes read."""
    c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    body = json.dumps({"model": "m", "stream": True, "max_tokens": MAX_TOKENS,
                       "messages": [{"role": "user", "content": text}]})
    c.request("POST", "/v1/chat/completions", body,
              {"Authorization": "Bearer " + key,
               "Content-Type": "application/json"})
    r = c.getresponse()
    result["status"] = r.status
    result["trace"] = r.getheader("x-ark-trace-id")
    data = b""
    try:
        while True:
            chunk = r.read1(4096)
            if not chunk:
                break
            data += chunk
    except (http.client.IncompleteRead, ConnectionError, OSError):
        pass
    result["data"] = data


def kill_group(gw):
    os.killpg(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait()
    if gw.proc.stdout:
        gw.proc.stdout.close()


def test_killed_request_billed_at_estimate(make_gateway, stub, redis_server):
    gw = journal_gateway(make_gateway, stub, redis_server)
    key = gw.create_key("jay", models="m", tenant="jt")
    gw.start()
    # a finished request first: it is billed at its exact usage, and its
    # journal slot is free again
    words = "one two three four five six seven eight nine ten"
    assert gw.chat(key, "m", "warm up " + words)[0] == 200
    base = wait_usage(redis_server, "k", "jay", "requests", 1)
    assert base["requests"] == 1
    assert base.get("estimated_requests", 0) == 0

    # 60 words, 300 ms apart: 18 s to serve; killed after ~1.5 s
    stub.faults("slow:300")
    result = {}
    t = threading.Thread(target=slow_stream,
                         args=(gw, key, "tell me " + words * 5, result))
    t.start()
    deadline = time.time() + 10
    while time.time() < deadline and not stub.requests()[1:]:
        time.sleep(0.05)
    assert len(stub.requests()) == 2, "the slow request did not go upstream"
    time.sleep(1.5)
    assert gw.metrics()["ark_journal_slots_in_use"] == 1
    kill_group(gw)
    t.join(30)
    assert result.get("status") == 200 and result.get("trace")
    trace = result["trace"]
    served = stub.stats()
    # nothing was settled by the dead node
    assert usage(redis_server, "k", "jay") == base
    assert redis_server.keys("%sdone:%s:*" % (PREFIX, trace)) == []

    gw.start()
    # billed by the start itself (before it serves), not later: the dead
    # processes may still be zombies nobody has reaped
    after = usage(redis_server, "k", "jay")
    rec = [x for x in stub.requests() if x.get("usage")][-1]
    served_prompt, served_completion = (rec["usage"]["prompt_tokens"],
                                        rec["usage"]["completion_tokens"])
    assert served_completion > 0, rec
    assert after["requests"] == base["requests"] + 1
    assert after["estimated_requests"] == 1
    est_prompt = after["prompt_tokens"] - base["prompt_tokens"]
    est_completion = after["completion_tokens"] - base["completion_tokens"]
    assert est_completion == MAX_TOKENS
    assert est_prompt >= served_prompt
    assert est_completion >= served_completion
    assert after["estimated_tokens"] == est_prompt + est_completion
    assert after["spend_nano"] > base["spend_nano"]
    tenant = usage(redis_server, "t", "jt")
    assert tenant["estimated_requests"] == 1
    assert tenant["requests"] == after["requests"]
    assert len(redis_server.keys("%sdone:%s:*" % (PREFIX, trace))) == 1
    assert "ARK00105" in gw.error_log()
    m = gw.metrics()
    assert m['ark_journal_replays_total{kind="estimate"}'] == 1
    assert m["ark_journal_slots_in_use"] == 0
    print("served %d+%d tokens, billed at the estimate %d+%d"
          % (served_prompt, served_completion, est_prompt, est_completion),
          served.get("tokens"))

    # a second start bills nothing more
    gw.stop()
    gw.start()
    assert usage(redis_server, "k", "jay") == after


def test_journal_off(make_gateway, stub, redis_server):
    gw = journal_gateway(make_gateway, stub, redis_server,
                         "ArkGovernJournal off\n")
    key = gw.create_key("kay", models="m")
    gw.start()
    assert gw.chat(key, "m", "hello there")[0] == 200
    assert "ark_journal_slots" not in gw.metrics()
    assert not os.path.exists(os.path.join(gw.root, "run", "ark-journal"))


def test_foreign_journal_moved_aside(make_gateway, stub, redis_server):
    gw = journal_gateway(make_gateway, stub, redis_server,
                         "ArkGovernJournal journal-x slots=128\n")
    gw.allow.append(r"ARK00107")
    key = gw.create_key("el", models="m")
    path = os.path.join(gw.root, "run", "journal-x")
    with open(path, "w") as f:
        f.write("something else\n")
    gw.start()
    assert "ARK00107" in gw.error_log()
    aside = [n for n in os.listdir(os.path.join(gw.root, "run"))
             if n.startswith("journal-x.rejected-")]
    assert len(aside) == 1
    assert gw.chat(key, "m", "hello there")[0] == 200
    assert gw.metrics()["ark_journal_slots"] == 128


def test_dead_child_billed_by_running_parent(make_gateway, stub,
                                             redis_server):
    """Only the child serving the request dies (the OOM killer's way):
    the parent, still running, bills its request from its monitor loop
    (about every 10 s), once."""
    gw = journal_gateway(make_gateway, stub, redis_server)
    key = gw.create_key("em", models="m")
    gw.start()
    stub.faults("slow:300")
    result = {}
    t = threading.Thread(target=slow_stream,
                         args=(gw, key, "count slowly to twenty please",
                               result))
    t.start()
    deadline = time.time() + 10
    while time.time() < deadline and not stub.requests():
        time.sleep(0.05)
    assert stub.requests(), "the slow request did not go upstream"
    time.sleep(1.0)
    children = gw.children()
    assert children
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    t.join(30)
    trace = result["trace"]
    u = wait_usage(redis_server, "k", "em", "requests", 1, timeout=40)
    assert u.get("requests") == 1, u
    assert u["estimated_requests"] == 1
    assert u["completion_tokens"] == MAX_TOKENS
    rec = stub.requests()[0]
    assert u["prompt_tokens"] >= rec["usage"]["prompt_tokens"]
    assert u["completion_tokens"] >= rec["usage"]["completion_tokens"]
    assert len(redis_server.keys("%sdone:%s:*" % (PREFIX, trace))) == 1
    time.sleep(3)
    # the node serves on; the orphan is not billed again
    assert gw.chat(key, "m", "and again")[0] == 200
    u2 = wait_usage(redis_server, "k", "em", "requests", 2)
    assert u2["requests"] == 2 and u2["estimated_requests"] == 1


def test_graceful_reload_keeps_journal(make_gateway, stub, redis_server):
    """A graceful reload (mod_ark.so unloaded and loaded again) keeps the
    journal mapped; requests after it are journaled and settled, and the
    server stops cleanly."""
    gw = journal_gateway(make_gateway, stub, redis_server)
    key = gw.create_key("gee", models="m")
    gw.start()
    assert gw.chat(key, "m", "before the reload")[0] == 200
    gw.graceful()
    gw.graceful()
    for i in range(3):
        assert gw.chat(key, "m", "after the reload %d" % i)[0] == 200
    u = wait_usage(redis_server, "k", "gee", "requests", 4)
    assert u["requests"] == 4 and "estimated_requests" not in u
    m = gw.metrics()
    assert m["ark_journal_slots"] == 4096
    assert m["ark_journal_slots_in_use"] == 0
    gw.stop()
    assert gw.proc.returncode == 0        # the parent exited, no crash
    assert "exit signal" not in gw.error_log()
    assert "Segmentation" not in gw.error_log()
