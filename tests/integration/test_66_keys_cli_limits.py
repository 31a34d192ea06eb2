"""66: the ark-keys CLI for governance: limits and budgets on keys
(create, set, show, list), tenant lines (tenant), secret rotation with a
grace period (rotate, verify) and live usage read from a real
redis-server (usage). Only the built ark-keys binary and redis-server are
used; no httpd."""
import json
import os
import re
import subprocess
import time

import pytest

from ark_harness import ARK_KEYS, ark_keys, free_port
from conftest import wait_port


def keys_file(tmp_path, *creates):
    """A new keys file holding keys made with `create`; returns its path
    and the secrets by key name."""
    path = str(tmp_path / "ark-keys")
    secrets = {}
    for args in creates:
        cmd = ["create", "-f", path, *args]
        if not os.path.exists(path):
            cmd.insert(1, "-c")
        out = ark_keys(*cmd)
        name = args[args.index("-n") + 1]
        secrets[name] = out.stdout.strip()
        assert secrets[name].startswith("sk-ark-")
    return path, secrets


def key_line(path, name):
    with open(path) as f:
        for line in f:
            if line.startswith(name + " "):
                return line.rstrip("\n")
    raise AssertionError("no line for %s" % name)


def file_lines(path):
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip() and l[0] != "#"]


def show(path, name):
    return json.loads(ark_keys("show", "-f", path, name, "--json").stdout)


def verify(path, secret):
    return subprocess.run([ARK_KEYS, "verify", "-f", path], input=secret,
                          capture_output=True, text=True)


# ------------------------------------------------------------- limits

def test_66_01_create_with_limits_show_list(tmp_path):
    path, _ = keys_file(
        tmp_path,
        ["-n", "alice", "-t", "acme", "--rpm", "60", "--tpm", "100000",
         "--concurrency", "4", "--budget-day", "25", "--budget-month",
         "500.50", "--provider-limit", "openai:rpm=10,tpm=1000",
         "--provider-limit", "azure-eu:tpm=2000"],
        ["-n", "bob"])
    line = key_line(path, "alice")
    assert line.endswith(" rpm=60 tpm=100000 concurrency=4 budget_day=25 "
                         "budget_month=500.5 rpm@openai=10 tpm@openai=1000 "
                         "tpm@azure-eu=2000")
    assert " rpm=" not in key_line(path, "bob")

    doc = show(path, "alice")
    assert doc["limits"] == {"rpm": 60, "tpm": 100000, "concurrency": 4,
                             "budget_day": "25", "budget_month": "500.5"}
    assert doc["provider_limits"] == [
        {"provider": "openai", "rpm": 10, "tpm": 1000},
        {"provider": "azure-eu", "rpm": None, "tpm": 2000}]
    assert doc["previous_until"] is None and not doc["previous_active"]
    assert doc["tenant"] == "acme" and doc["tenant_limits"] is None
    assert show(path, "bob")["limits"] == {
        "rpm": None, "tpm": None, "concurrency": None, "budget_day": None,
        "budget_month": None}

    out = ark_keys("show", "-f", path, "-n", "alice").stdout
    rows = dict(re.split(r"\s{2,}", l, maxsplit=1)
                for l in out.splitlines())
    assert rows["rpm"] == "60" and rows["budget_month"] == "500.5"
    assert rows["tpm@azure-eu"] == "2000" and rows["rpm@azure-eu"] == "-"
    assert rows["previous_until"] == "-"
    assert rows["tenant limits"] == "- (no tenant line)"
    assert "sha256" not in out

    out = ark_keys("list", "-f", path).stdout.splitlines()
    head = out[0].split()
    assert head == ["NAME", "TENANT", "STATE", "PRIORITY", "MODELS", "TAGS",
                    "HINT", "CREATED", "LIMITS"]
    alice = out[1].split()
    assert alice[:5] == ["alice", "acme", "enabled", "normal", "*"]
    assert alice[8] == ("rpm=60,tpm=100000,concurrency=4,budget_day=25,"
                        "budget_month=500.5,rpm@openai=10,tpm@openai=1000,"
                        "tpm@azure-eu=2000")
    assert out[2].split()[8] == "-"
    assert "sha256" not in "\n".join(out)


def test_66_02_set_limits(tmp_path):
    path, _ = keys_file(tmp_path, ["-n", "alice", "--rpm", "60",
                                   "--provider-limit", "openai:rpm=10"])
    out = ark_keys("set", "-f", path, "alice", "--tpm", "5000",
                   "--budget-day", "0.25", "--provider-limit",
                   "openai:tpm=100", "--provider-limit", "local:rpm=3")
    assert "changed" in out.stdout
    assert ("limits rpm=60,tpm=5000,budget_day=0.25,rpm@openai=10,"
            "tpm@openai=100,rpm@local=3") in out.stdout
    # none and 0 remove; other limits stay
    ark_keys("set", "-f", path, "-n", "alice", "--rpm", "none",
             "--budget-day", "0", "--provider-limit", "openai:rpm=none")
    doc = show(path, "alice")
    assert doc["limits"]["rpm"] is None and doc["limits"]["tpm"] == 5000
    assert doc["limits"]["budget_day"] is None
    assert doc["provider_limits"] == [
        {"provider": "openai", "rpm": None, "tpm": 100},
        {"provider": "local", "rpm": 3, "tpm": None}]
    ark_keys("set", "-f", path, "alice", "--provider-limit", "openai:none")
    assert [p["provider"] for p in show(path, "alice")["provider_limits"]] \
        == ["local"]
    # the same values again leave the file alone
    before = os.stat(path).st_ino
    out = ark_keys("set", "-f", path, "alice", "--tpm", "5000")
    assert "already had these attributes" in out.stdout
    assert os.stat(path).st_ino == before
    # the result parses
    assert ark_keys("check", "-f", path).returncode == 0


@pytest.mark.parametrize("args", [
    ["--rpm", "-1"], ["--rpm", "1.5"], ["--rpm", "1000000000001"],
    ["--tpm", "many"], ["--concurrency", ""], ["--budget-day", "1e3"],
    ["--budget-day", "1.0000000001"], ["--budget-month", "-5"],
    ["--provider-limit", "openai"], ["--provider-limit", ":rpm=1"],
    ["--provider-limit", "open ai:rpm=1"], ["--provider-limit", "openai:rps=1"],
    ["--provider-limit", "openai:rpm=1,rpm=2"],
    ["--provider-limit", "openai:rpm=1", "--provider-limit", "openai:tpm=1"],
    ["--rpm", "1", "--rpm", "2"], ["--grace", "1h"], ["--json"],
])
def test_66_03_set_usage_errors(tmp_path, args):
    path, _ = keys_file(tmp_path, ["-n", "alice"])
    before = open(path).read()
    r = ark_keys("set", "-f", path, "alice", *args, check=False)
    assert r.returncode == 2, r
    assert "Try 'ark-keys --help'" in r.stderr
    assert open(path).read() == before


def test_66_04_hand_written_errors_reported(tmp_path):
    path, _ = keys_file(tmp_path, ["-n", "alice"])
    with open(path, "a") as f:
        f.write("tenant:acme models=*\n")
    r = ark_keys("check", "-f", path, check=False)
    assert r.returncode == 1
    assert "attribute 'models' is not allowed on a tenant line" in r.stderr
    r = ark_keys("set", "-f", path, "alice", "--rpm", "5", check=False)
    assert r.returncode == 1 and "fix it first" in r.stderr


# ------------------------------------------------------------- tenants

def test_66_05_tenant(tmp_path):
    path, _ = keys_file(tmp_path, ["-n", "alice", "-t", "acme"],
                        ["-n", "carol", "-t", "acme"], ["-n", "bob"])
    out = ark_keys("tenant", "-f", path, "-t", "acme", "--rpm", "1000",
                   "--budget-month", "250.75").stdout
    assert out == ("Tenant 'acme' changed in %s (rpm=1000,budget_month="
                   "250.75; 2 keys).\n" % path)
    assert "tenant:acme rpm=1000 budget_month=250.75" in file_lines(path)
    # a tenant no key uses yet is fine
    ark_keys("tenant", "-f", path, "-t", "future", "--concurrency", "3")
    ark_keys("tenant", "-f", path, "-t", "acme", "--tpm", "9000")

    rows = [l.split() for l in
            ark_keys("tenant", "-f", path).stdout.splitlines()]
    assert rows[0] == ["TENANT", "RPM", "TPM", "CONCURRENCY", "BUDGET_DAY",
                       "BUDGET_MONTH", "KEYS"]
    assert rows[1:] == [["acme", "1000", "9000", "-", "-", "250.75", "2"],
                        ["future", "-", "-", "3", "-", "-", "0"],
                        ["bob", "-", "-", "-", "-", "-", "1"]]
    doc = json.loads(ark_keys("tenant", "-f", path, "--json").stdout)
    assert doc[0] == {"tenant": "acme", "keys": 2, "tenant_line": True,
                      "limits": {"rpm": 1000, "tpm": 9000,
                                 "concurrency": None, "budget_day": None,
                                 "budget_month": "250.75"}}
    assert doc[2]["tenant"] == "bob" and not doc[2]["tenant_line"]
    one = ark_keys("tenant", "-f", path, "-t", "future").stdout.splitlines()
    assert len(one) == 2 and one[1].split()[0] == "future"
    assert show(path, "alice")["tenant_limits"]["tpm"] == 9000

    # all limits removed: the line goes
    out = ark_keys("tenant", "-f", path, "-t", "future", "--concurrency",
                   "none").stdout
    assert "its line was removed" in out
    assert not [l for l in file_lines(path) if l.startswith("tenant:future")]
    r = ark_keys("tenant", "-f", path, "-t", "nobody", check=False)
    assert r.returncode == 1 and "no tenant 'nobody'" in r.stderr
    r = ark_keys("tenant", "-f", path, "--rpm", "5", check=False)
    assert r.returncode == 2
    r = ark_keys("tenant", "-f", path, "-t", "acme", "--provider-limit",
                 "x:rpm=1", check=False)
    assert r.returncode == 2
    assert ark_keys("check", "-f", path).stdout.endswith(
        "OK, 3 keys (3 enabled, 0 revoked), 1 tenant line\n")


# ------------------------------------------------------------- rotate

def test_66_06_rotate(tmp_path):
    path, secrets = keys_file(tmp_path, ["-n", "alice", "--rpm", "7"],
                              ["-n", "bob"])
    old = secrets["alice"]
    r = ark_keys("rotate", "-f", path, "alice", "--grace", "15m")
    new = r.stdout.strip()
    assert new.startswith("sk-ark-") and new != old
    assert r.stdout == new + "\n"
    assert "The old secret works until" in r.stderr and "(15m0s)" in r.stderr
    assert new not in r.stderr and old not in r.stderr
    line = key_line(path, "alice")
    assert " hint=%s " % new[-4:] in line and " rpm=7 " in line
    m = re.search(r" previous=sha256:[0-9a-f]{64} previous_until=(\S+)$",
                  line)
    assert m
    until = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ")) \
        - time.timezone
    assert abs(until - (time.time() + 900)) < 60

    assert verify(path, new).stdout.startswith("name=alice ")
    assert "secret=" not in verify(path, new).stdout
    out = verify(path, old).stdout
    assert out.startswith("name=alice ") and " secret=previous until=" in out
    doc = show(path, "alice")
    assert doc["previous_active"] and doc["hint"] == new[-4:]
    assert "the old secret works" in ark_keys("show", "-f", path,
                                             "alice").stdout

    # rotating again drops the older secret; grace 0 ends the new one
    r = ark_keys("rotate", "-f", path, "-n", "alice", "--grace", "0")
    newer = r.stdout.strip()
    assert "The old secret no longer works" in r.stderr
    assert verify(path, old).returncode == 1
    out = verify(path, new).stdout
    assert " secret=previous expired=" in out
    assert not show(path, "alice")["previous_active"]
    assert verify(path, newer).stdout.startswith("name=alice ")
    assert verify(path, secrets["bob"]).stdout.startswith("name=bob ")
    assert ark_keys("check", "-f", path).returncode == 0

    # default grace is 24h; a revoked key is warned about
    ark_keys("revoke", "-f", path, "bob")
    r = ark_keys("rotate", "-f", path, "bob")
    assert "(24h0m0s)" in r.stderr and "is revoked" in r.stderr
    for bad in ("1w", "-1h", "24 h", "367d", "h", ""):
        r = ark_keys("rotate", "-f", path, "bob", "--grace", bad, check=False)
        assert r.returncode == 2, bad
    r = ark_keys("rotate", "-f", path, "nobody", check=False)
    assert r.returncode == 1 and "no key named 'nobody'" in r.stderr
    r = ark_keys("rotate", "-f", path, check=False)
    assert r.returncode == 2


# ------------------------------------------------------------- usage

def redis_prepare(redis, now_s):
    day = time.strftime("%Y%m%d", time.gmtime(now_s))
    month = time.strftime("%Y%m", time.gmtime(now_s))
    redis.cli("HSET", "ark:k:alice:u:" + day, "requests", "12",
              "prompt_tokens", "3400", "completion_tokens", "800",
              "cached_tokens", "100", "spend_nano", "2500000000",
              "cache_hits", "3", "saved_nano", "10000000")
    redis.cli("HSET", "ark:k:alice:u:" + month, "requests", "40",
              "spend_nano", "7000000000")
    redis.cli("HSET", "ark:t:acme:u:" + month, "requests", "400",
              "spend_nano", "123450000000")
    us = now_s * 1000000
    # rpm 60 per 60 s: one unit is 1 s of TAT ahead of now; 30 s ahead
    # (plus a little slack for the time between SET and the read) is 30.
    redis.cli("SET", "ark:k:alice:rpm", str(us + 29500000))
    redis.cli("SET", "ark:t:acme:rpm", str(us + 6000000))  # 100 of 1000
    redis.cli("SET", "ark:k:alice:p:openai:tpm", str(us + 30000000))
    redis.cli("ZADD", "ark:k:alice:inflight", str(us + 60000000), "a",
              str(us + 50000000), "b", str(us - 1000000), "expired")
    return day, month


def test_66_07_usage(tmp_path, redis_server):
    path, _ = keys_file(tmp_path, [
        "-n", "alice", "-t", "acme", "--rpm", "60", "--concurrency", "4",
        "--budget-day", "25", "--provider-limit", "openai:tpm=1000"])
    ark_keys("tenant", "-f", path, "-t", "acme", "--rpm", "1000",
             "--budget-month", "500")
    now_s = int(redis_server.cli("TIME").split()[0])
    day, month = redis_prepare(redis_server, now_s)
    addr = "127.0.0.1:%d" % redis_server.port

    doc = json.loads(ark_keys("usage", "-f", path, "alice", "--redis", addr,
                              "--json").stdout)
    assert abs(doc["time_us"] / 1e6 - now_s) < 30
    assert doc["redis"] == addr and doc["prefix"] == "ark:"
    k, t = doc["key"], doc["tenant"]
    assert k["name"] == "alice" and t["name"] == "acme"
    assert k["day"]["period"] == day and k["month"]["period"] == month
    assert k["day"]["requests"] == 12 and k["day"]["prompt_tokens"] == 3400
    assert k["day"]["completion_tokens"] == 800
    assert k["day"]["cached_tokens"] == 100 and k["day"]["cache_hits"] == 3
    assert k["day"]["spend"] == "2.5" and k["day"]["saved"] == "0.01"
    assert k["day"]["budget"] == "25"
    assert k["day"]["budget_used_pct"] == pytest.approx(10.0)
    assert k["month"]["requests"] == 40 and k["month"]["budget"] is None
    assert t["month"]["spend"] == "123.45" and t["month"]["budget"] == "500"
    assert t["month"]["budget_used_pct"] == pytest.approx(24.69)
    assert t["day"]["requests"] == 0  # missing hash: zeros
    assert k["rpm"]["limit"] == 60 and 15 <= k["rpm"]["used"] <= 30
    assert k["tpm"] == {"used": None, "limit": None, "used_pct": None,
                        "refill_us": 0}
    assert 15000000 <= k["rpm"]["refill_us"] <= 29500000
    assert k["inflight"] == {"used": 2, "limit": 4, "used_pct": 50.0}
    assert t["rpm"]["limit"] == 1000 and 20 <= t["rpm"]["used"] <= 100
    assert t["inflight"]["used"] == 0 and t["inflight"]["limit"] is None
    assert k["providers"][0]["provider"] == "openai"
    assert k["providers"][0]["tpm"]["limit"] == 1000
    assert 250 <= k["providers"][0]["tpm"]["used"] <= 500
    assert k["providers"][0]["rpm"]["limit"] is None
    # a bucket under a limit the keys file does not know (ArkLimitDefault)
    redis_server.cli("SET", "ark:k:alice:tpm", str(now_s * 1000000 + 9000000))
    doc = json.loads(ark_keys("usage", "-f", path, "alice", "--redis", addr,
                              "--json").stdout)
    assert doc["key"]["tpm"]["used"] is None
    assert 0 < doc["key"]["tpm"]["refill_us"] <= 9000000

    out = ark_keys("usage", "-f", path, "-n", "alice", "--redis",
                   addr).stdout
    assert out.startswith("Usage of key 'alice' (tenant 'acme') at ")
    rows = {}
    for l in out.splitlines()[2:]:
        cells = re.split(r"\s{2,}", l.strip())
        rows.setdefault(cells[0], cells[1:])
    assert rows["in flight"] == ["2 of 4 (50.0%)", "0"]
    assert rows["spend"] == ["2.5 of 25 (10.0%)", "0"]  # today first
    assert rows["requests"] == ["12", "0"]
    assert rows["tpm in use"][0].startswith("? (full again in ")
    assert rows["tpm in use"][1] == "-"
    assert "sk-ark-" not in out


def test_66_08_usage_errors_and_auth(tmp_path):
    path, _ = keys_file(tmp_path, ["-n", "alice"])
    port = free_port()
    r = ark_keys("usage", "-f", path, "alice", "--redis",
                 "127.0.0.1:%d" % port, check=False)
    assert r.returncode == 1
    assert "cannot connect to Redis at 127.0.0.1:%d" % port in r.stderr
    r = ark_keys("usage", "-f", path, "alice", "--redis",
                 "unix:%s/none.sock" % tmp_path, check=False)
    assert r.returncode == 1 and "none.sock" in r.stderr
    for bad in ("127.0.0.1:0", "127.0.0.1:x", "unix:", "[::1", ":6379"):
        r = ark_keys("usage", "-f", path, "alice", "--redis", bad,
                     check=False)
        assert r.returncode == 2, bad
    r = ark_keys("usage", "-f", path, "nobody", "--redis",
                 "127.0.0.1:%d" % port, check=False)
    assert r.returncode == 1 and "no key named 'nobody'" in r.stderr

    # a password-protected Redis on a Unix socket; a custom prefix
    password = "pw-7f3c9e1b5d2a4f6e"
    sock = str(tmp_path / "redis.sock")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--unixsocket", sock, "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--requirepass", password],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        pwfile = tmp_path / "pw"
        pwfile.write_text(password + "\n")
        subprocess.run(["redis-cli", "-p", str(port), "-a", password,
                        "--no-auth-warning", "HSET",
                        "gw1:k:alice:u:" + time.strftime("%Y%m%d",
                                                         time.gmtime()),
                        "requests", "5"], check=True, capture_output=True)
        r = ark_keys("usage", "-f", path, "alice", "--redis",
                     "unix:" + sock, check=False)
        assert r.returncode == 1 and "NOAUTH" in r.stderr
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-password\n")
        r = ark_keys("usage", "-f", path, "alice", "--redis",
                     "unix:" + sock, "--password-file", str(wrong),
                     check=False)
        assert r.returncode == 1 and "AUTH" in r.stderr
        assert "not-the-password" not in r.stderr
        doc = json.loads(ark_keys(
            "usage", "-f", path, "alice", "--redis", "unix:" + sock,
            "--password-file", str(pwfile), "--prefix", "gw1:",
            "--json").stdout)
        assert doc["key"]["day"]["requests"] == 5
        assert doc["prefix"] == "gw1:"
    finally:
        proc.kill()
        proc.wait()


def test_66_09_help_mentions_new_commands():
    out = ark_keys("--help").stdout
    for word in ("tenant -f FILE", "rotate -f FILE NAME", "show -f FILE NAME",
                 "usage -f FILE NAME", "--grace", "--budget-day",
                 "--provider-limit", "--password-file", "--json"):
        assert word in out, word
