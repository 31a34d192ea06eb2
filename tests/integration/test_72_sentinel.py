"""72: Redis Sentinel: mod_ark's governance Redis and ark-cached's Redis
tier follow a failover.

A real Redis master with one replica and three real Sentinels
(tests/integration/redis_sentinel.py), a real httpd with mod_ark
(ArkGovernRedis sentinel=... wait-replicas=1, an rpm limit, priced
models, ArkCache on for one model) and a real ark-cached
(redis_sentinels, redis_wait_replicas 1). Traffic runs before, during
and after `kill -9` of the master; the Sentinels promote the replica.

Checked: no client request fails; governance writes reach the new master
(and the time that takes is printed); the spend recorded in Redis equals,
to the nano-unit, what the tokens the stub served cost (wait-replicas=1:
no acknowledged settlement is lost with the old master, and the ones in
doubt are replayed exactly once under their done-keys); the rpm limit is
enforced from the new master; ark-cached writes to the new master, and a
restarted ark-cached (cold L1, index rebuilt from Redis) still answers
from the cache every question stored before the failover.

test_72_03 does the same with a planned switchover (SENTINEL FAILOVER):
the old master stays up as a replica, so cached addresses and pooled
connections point at a replica (ROLE "slave", READONLY) until the
clients ask the Sentinels again.
"""
import json
import threading
import time
from collections import Counter

import pytest

from ark_harness import add_key_line
from conftest import openai_provider
from redis_sentinel import SentinelCluster
from test_65_governance import (METRICS_LOC, cost_of, gov_metric, usage,
                                wait_until)

PRICE = (2.5, 10.0)          # per 1M tokens, in and out
ALLOW = [r"ARK000(92|93): governance Redis",
         r"ARK\d+: .*(?i:redis)",
         r"ARK\d+: .*(?i:ark-cached|cache)"]


@pytest.fixture
def sentinels(tmp_path):
    rs = SentinelCluster(tmp_path / "rs", replicas=1, sentinels=3,
                         down_after_ms=1000, failover_timeout_ms=3000)
    try:
        rs.start()
        yield rs
    finally:
        rs.stop()


def gateway_conf(stub, rs, cached):
    return (openai_provider(stub)
            + "ArkModel m stub gpt-4o-mini price=%s/%s\n" % PRICE
            + "ArkModel mc stub gpt-4o price=%s/%s\n" % PRICE
            + "ArkCacheModel m off\n"
            + "ArkCacheServer 127.0.0.1:%d\n" % cached.port
            + "ArkCacheTimeout connect=200ms call=2s\n"
            + "ArkGovernRedis sentinel=%s %s wait-replicas=1\n"
            % (rs.master_name, " ".join(rs.sentinel_addrs))
            + "ArkGovernTimeout 300ms\n"
            + METRICS_LOC)


def cached_args(rs):
    return ["--redis_sentinels", rs.sentinel_list,
            "--redis_sentinel_master", rs.master_name,
            "--redis_wait_replicas", "1",
            # WAIT gets half of it: room for a replica on a busy machine
            "--redis_command_timeout_ms", "1000"]


def chat(gw, key, text, model="m"):
    body = {"model": model, "temperature": 0,
            "messages": [{"role": "user", "content": text}]}
    return gw.request("POST", "/v1/chat/completions", body, key)


def cache_entries(node):
    try:
        return len(node.command("KEYS", "ark:cache:e:*"))
    except OSError:
        return -1


def test_72_01_failover_followed_by_governance_and_cache(
        make_gateway, make_cached, stub, sentinels, tmp_path):
    rs = sentinels
    cached = make_cached(args=cached_args(rs))
    keys_file = str(tmp_path / "keys")
    gw = make_gateway(ark=gateway_conf(stub, rs, cached),
                      location="ArkCache on", start=False, allow=ALLOW,
                      keys_file=keys_file)
    spender = add_key_line(keys_file, "spender", "rpm=100000",
                           tenant="acme")
    asker = add_key_line(keys_file, "asker", "", tenant="acme")
    limited = add_key_line(keys_file, "limited", "rpm=6", tenant="acme")
    gw.start()
    old, new = rs.master, rs.replicas[0]

    # -- before: traffic, cache stores, all on the master and the replica
    for i in range(10):
        st, _, body = chat(gw, spender, "before %d" % i)
        assert st == 200, body
    questions = ["What is the boiling point of element %d?" % i
                 for i in range(8)]
    for q in questions:
        st, h, body = chat(gw, asker, q, model="mc")
        assert st == 200 and h["x-ark-cache"] == "miss", (h, body)
    assert wait_until(lambda: cache_entries(old) == len(questions), 5)
    # WAIT 1: every store was confirmed by the replica (the master may
    # show a store a moment before its WAIT returns)
    assert wait_until(lambda: cache_entries(new) == len(questions), 2)
    assert cached.info()["wait_short"] == "0"
    assert wait_until(lambda: usage(old, "ark:", "k", "spender")
                      .get("requests") == 10, 5)

    # -- during: steady traffic while the master is killed
    stop = threading.Event()
    statuses = Counter()

    def traffic():
        i = 0
        while not stop.is_set():
            st, _, _ = chat(gw, spender, "during %d" % i)
            statuses[st] += 1
            i += 1
            time.sleep(0.02)

    def stores():
        i = 0
        while not stop.is_set():
            st, h, _ = chat(gw, asker, "Failover question number %d?" % i,
                            model="mc")
            statuses[st] += 1
            i += 1
            time.sleep(0.05)

    threads = [threading.Thread(target=traffic),
               threading.Thread(target=stores)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        t_kill = time.monotonic()
        rs.kill_master()
        # what the replica holds once the replication stream has stopped:
        # it changes again only when a client writes to it as the master
        time.sleep(0.3)
        seen = usage(new, "ark:", "k", "spender").get("requests", 0)
        entries = cache_entries(new)
        rs.wait_failover(old)
        t_promoted = time.monotonic()
        assert rs.master is new
        # mod_ark's settlements and ark-cached's stores land on the new
        # master: note when each is first seen (polled together)
        t_gov = t_cache = None
        deadline = time.monotonic() + 20
        while (t_gov is None or t_cache is None) \
                and time.monotonic() < deadline:
            now = time.monotonic()
            if t_gov is None and usage(new, "ark:", "k", "spender") \
                    .get("requests", 0) > seen:
                t_gov = now
            if t_cache is None and cache_entries(new) > entries:
                t_cache = now
            time.sleep(0.02)
        assert t_gov is not None, "mod_ark never wrote to the new master"
        assert t_cache is not None, "ark-cached never wrote to the new master"
    finally:
        stop.set()
        for t in threads:
            t.join()
    print("\nfailover: Sentinels promoted after %.2f s; mod_ark writing to "
          "the new master %.2f s after the kill (%.2f s after promotion); "
          "ark-cached %.2f s after the kill (%.2f s after promotion)"
          % (t_promoted - t_kill, t_gov - t_kill, t_gov - t_promoted, t_cache - t_kill,
             t_cache - t_promoted))
    # no client saw the failover
    assert set(statuses) == {200}, statuses
    info = cached.info()
    assert info["sentinel_master"] == "127.0.0.1:%d" % new.port, info
    assert int(info["sentinel_master_changes"]) >= 1, info

    # -- the old master comes back as a replica: WAIT 1 can succeed again,
    # and settlements in doubt are replayed
    rs.restart_node(old)
    rs.wait_replicas_synced()
    for i in range(10):
        st, _, body = chat(gw, spender, "after %d" % i)
        assert st == 200, body

    # -- spend is exact: what Redis holds is what the stub's tokens cost
    want = Counter()
    for rec in stub.requests():
        if rec["body"]["model"] != "gpt-4o-mini":
            continue
        assert rec["outcome"] == "complete", rec
        u = rec["usage"]
        want.update({"requests": 1, "prompt_tokens": u["prompt_tokens"],
                     "completion_tokens": u["completion_tokens"],
                     "spend_nano": cost_of(u, *PRICE)})
    fields = ("requests", "prompt_tokens", "completion_tokens", "spend_nano")

    def got():
        u = usage(new, "ark:", "k", "spender")
        return {f: u.get(f, 0) for f in fields}

    assert wait_until(lambda: got() == dict(want), 15), (got(), want)
    assert gov_metric(gw, "ark_governance_pending_settlements") == 0
    assert gov_metric(gw, "ark_governance_uncertain_total") == 0
    print("settlements fewer replicas confirmed than wait-replicas "
          "(replayed): %d" % gov_metric(gw, "ark_governance_wait_short_total"))

    # -- the rpm limit is enforced from the new master
    codes = [chat(gw, limited, "limited %d" % i)[0] for i in range(8)]
    assert codes[:6] == [200] * 6 and codes[6:] == [429, 429], codes
    assert new.command("EXISTS", "ark:k:limited:rpm") == 1

    # -- a cold ark-cached rebuilds its index from the new master: every
    # question stored before the failover is still a hit
    cached.stop()
    cached.start()
    assert wait_until(lambda: cached.info().get("sentinel_master")
                      == "127.0.0.1:%d" % new.port, 10)
    hits = 0
    for q in questions:
        st, h, body = chat(gw, asker, q, model="mc")
        assert st == 200, body
        hits += h.get("x-ark-cache") == "hit"
    assert hits == len(questions)


def test_72_02_bad_sentinel_config_is_refused(make_gateway, stub,
                                               tmp_path):
    ark = (openai_provider(stub) + "ArkModel m stub gpt-4o-mini\n"
           + "ArkGovernRedis sentinel=mymaster unix:/tmp/x.sock\n")
    gw = make_gateway(ark=ark, start=False)
    out = gw.configtest()
    assert out.returncode != 0
    assert "every address is a Sentinel's host:port" in out.stderr, out
    ark = (openai_provider(stub) + "ArkModel m stub gpt-4o-mini\n"
           + "ArkGovernRedis 127.0.0.1:1 wait-replicas=99\n")
    gw = make_gateway(ark=ark, start=False)
    out = gw.configtest()
    assert out.returncode != 0
    assert "wait-replicas" in out.stderr, out
    assert "between 0 and 16" in out.stderr, out


def test_72_03_switchover_demotes_the_master_under_traffic(
        make_gateway, make_cached, stub, sentinels, tmp_path):
    """SENTINEL FAILOVER: the old master stays up and becomes a replica
    (the Sentinels close its clients' connections). Pooled connections
    and the cached address now point at a replica: mod_ark and ark-cached
    must notice (connection closed, READONLY, or ROLE slave), ask the
    Sentinels again and write to the new master; no settlement lost."""
    rs = sentinels
    cached = make_cached(args=cached_args(rs))
    keys_file = str(tmp_path / "keys")
    gw = make_gateway(ark=gateway_conf(stub, rs, cached),
                      location="ArkCache on", start=False, allow=ALLOW,
                      keys_file=keys_file)
    spender = add_key_line(keys_file, "spender", "rpm=100000",
                           tenant="acme")
    asker = add_key_line(keys_file, "asker", "", tenant="acme")
    gw.start()
    old, new = rs.master, rs.replicas[0]
    for i in range(5):
        assert chat(gw, spender, "warm %d" % i)[0] == 200
        assert chat(gw, asker, "Warm question %d?" % i, model="mc")[0] == 200
    stop = threading.Event()
    statuses = Counter()

    def traffic(key, model, word):
        i = 0
        while not stop.is_set():
            st = chat(gw, key, "%s %d?" % (word, i), model=model)[0]
            statuses[st] += 1
            i += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=traffic, args=(spender, "m", "x")),
               threading.Thread(target=traffic,
                                args=(asker, "mc", "Switch question"))]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        rs.switchover()
        rs.wait_failover(old)
        # the Sentinels reconfigure the old master as a replica (can take
        # a few seconds on a busy machine)
        assert wait_until(lambda: old.role() == "slave", 30)
        seen = usage(new, "ark:", "k", "spender").get("requests", 0)
        entries = cache_entries(new)
        assert wait_until(lambda: usage(new, "ark:", "k", "spender")
                          .get("requests", 0) > seen, 15)
        assert wait_until(lambda: cache_entries(new) > entries, 15)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(statuses) == {200}, statuses
    rs.wait_replicas_synced()
    for i in range(5):
        assert chat(gw, spender, "after %d" % i)[0] == 200
    want = Counter()
    for rec in stub.requests():
        if rec["body"]["model"] == "gpt-4o-mini":
            want.update({"requests": 1,
                         "spend_nano": cost_of(rec["usage"], *PRICE)})

    def got(node):
        u = usage(node, "ark:", "k", "spender")
        return {f: u.get(f, 0) for f in ("requests", "spend_nano")}

    assert wait_until(lambda: got(new) == dict(want), 15), (got(new), want)
    # the old master, now a replica, holds the same totals
    assert wait_until(lambda: got(old) == dict(want), 15), (got(old), want)
    info = cached.info()
    assert info["sentinel_master"] == "127.0.0.1:%d" % new.port, info


def test_72_04_passwords_for_data_nodes_and_sentinels(
        make_gateway, make_cached, stub, tmp_path):
    """Data nodes and Sentinels each require their own password: both
    clients AUTH to each, follow a failover, and never log a password."""
    data_pw = "data-pw-5b0c1e7a9d3f"
    sent_pw = "sentinel-pw-8e2a4c6b0d1f"
    rs = SentinelCluster(tmp_path / "rs", password=data_pw,
                         sentinel_password=sent_pw)
    try:
        rs.start()
        pw_file = tmp_path / "redis.pass"
        pw_file.write_text(data_pw + "\n")
        spw_file = tmp_path / "sentinel.pass"
        spw_file.write_text(sent_pw + "\n")
        cached = make_cached(args=cached_args(rs) + [
            "--redis_password_file", str(pw_file),
            "--redis_sentinel_password_file", str(spw_file)])
        keys_file = str(tmp_path / "keys")
        ark = gateway_conf(stub, rs, cached).replace(
            "wait-replicas=1\n", "wait-replicas=1 password=env:ARK_RPW "
            "sentinel-password=env:ARK_SPW\n")
        gw = make_gateway(ark=ark, location="ArkCache on", start=False,
                          allow=ALLOW, keys_file=keys_file,
                          env={"ARK_RPW": data_pw, "ARK_SPW": sent_pw})
        spender = add_key_line(keys_file, "spender", "rpm=1000",
                               tenant="acme")
        gw.start()
        old = rs.master
        for i in range(3):
            assert chat(gw, spender, "pw %d" % i)[0] == 200
            assert chat(gw, spender, "Password question %d?" % i,
                        model="mc")[0] == 200
        assert wait_until(lambda: usage(old, "ark:", "k", "spender")
                          .get("requests") == 6, 5)
        assert wait_until(lambda: cache_entries(old) == 3, 5)
        rs.kill_master()
        rs.wait_failover(old)
        new = rs.master
        assert wait_until(lambda: chat(gw, spender, "pw after")[0] == 200
                          and usage(new, "ark:", "k", "spender")
                          .get("requests", 0) > 6, 15)
        assert wait_until(lambda: chat(gw, spender, "Password after?",
                                       model="mc")[0] == 200
                          and cache_entries(new) > 3, 15)
        info = cached.cli("INFO")
        cached.stop()
        gw.stop()
        with open(cached.log, errors="replace") as f:
            logs = f.read()
        # both saw the failover, and said so without a password
        assert "ACD00807" in logs and "ARK00093" in gw.error_log()
        for text in (logs, gw.error_log(), info):
            assert data_pw not in text and sent_pw not in text
    finally:
        rs.stop()
