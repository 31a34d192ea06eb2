"""ark-report: the cost and usage report, run as the built binary.

An access log with known totals is generated (plain, gzip'd and on stdin,
with a malformed and a blank line), priced with a configuration whose
prices are whole nano-units per token, so every expected amount is an
exact integer here and must come out exactly in the report's CSV. The
HTML page must carry the same totals and its charts; the estimate mode
must price a usage CSV exactly.
"""
import csv
import gzip
import io
import json
import math
import os
import random
import subprocess
from decimal import Decimal

from ark_harness import BUILD

ARK_REPORT = os.path.join(BUILD, "ark-report")

CONF = """\
# prices per 1M tokens: 2.5/10 is 2500/10000 nano-units per token
ArkProvider openai openai https://api.openai.com/v1 key=env:OPENAI_KEY \\
    tags=tier=official,region=us
ArkProvider relay  openai https://relay.example/v1 key=env:RELAY_KEY tags=tier=optimized,region=us
ArkProvider qwen   openai https://qwen.example/v1 key=env:QWEN_KEY tags=region=cn
<VirtualHost *:8080>
    ArkModel gpt-4o openai gpt-4o   price=2.50/10
    ArkModel gpt-4o relay  gpt-4o   price=1.20/5
    ArkModel gpt-4o qwen   qwen-max price=0.30/1.20
    ArkModel mini   openai gpt-4o-mini price=0.15/0.60
</VirtualHost>
"""

# nano-units per token (input, output) of each channel
PRICES = {
    ("gpt-4o", "openai"): (2500, 10000),
    ("gpt-4o", "relay"): (1200, 5000),
    ("gpt-4o", "qwen"): (300, 1200),
    ("mini", "openai"): (150, 600),
}
UPSTREAM = {("gpt-4o", "openai"): "gpt-4o", ("gpt-4o", "relay"): "gpt-4o",
            ("gpt-4o", "qwen"): "qwen-max", ("mini", "openai"): "gpt-4o-mini"}
DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]


def cost(alias, prov, pt, ct):
    pin, pout = PRICES[(alias, prov)]
    return pt * pin + ct * pout


def baseline(alias, pt, ct):
    return max(cost(a, p, pt, ct) for (a, p) in PRICES if a == alias)


def nano(text):
    """An amount printed by ark-report, as an exact integer of nano-units."""
    value = Decimal(text) * 10**9
    assert value == value.to_integral_value(), text
    return int(value)


def money(n):
    """ark_money_format: a decimal without trailing zeros."""
    text = "%d.%09d" % (n // 10**9, n % 10**9)
    return text.rstrip("0").rstrip(".")


def nearest_rank(values, pct):
    values = sorted(values)
    rank = max(1, math.ceil(pct * len(values) / 100))
    return values[rank - 1]


def run(*args, stdin=b""):
    return subprocess.run([ARK_REPORT, *args], input=stdin,
                          capture_output=True, check=False)


def make_log(seed=67, n=300):
    """Lines and the exact sums they must produce."""
    rng = random.Random(seed)
    lines, exp = [], {}

    def bump(dim, name, **kw):
        g = exp.setdefault((dim, name), dict(
            requests=0, errors=0, cache_hits=0, prompt_tokens=0,
            completion_tokens=0, spend=0, baseline=0, saved_cache=0,
            saved_routing=0, spend_estimated=0, latency=[]))
        for k, v in kw.items():
            if k == "latency":
                g["latency"].append(v)
            else:
                g[k] += v

    for i in range(n):
        alias = rng.choice(["gpt-4o", "gpt-4o", "gpt-4o", "mini"])
        prov = "openai" if alias == "mini" else rng.choice(
            ["openai", "relay", "qwen", "qwen"])
        day = rng.choice(DAYS)
        key = rng.choice(["alice", "bob", "carol"])
        tenant = "acme" if key != "carol" else "beta"
        pt, ct = rng.randint(1, 5000), rng.randint(0, 2000)
        latency = rng.randint(5, 3000)
        rec = {"time": "%sT%02d:%02d:00.000Z" % (day, i % 24, i % 60),
               "method": "POST", "path": "/v1/chat/completions",
               "key": key, "tenant": tenant, "model": alias,
               "provider": prov, "upstream_model": UPSTREAM[(alias, prov)],
               "status": 200, "stream": False, "error": None,
               "ttfb_ms": latency / 2, "latency_ms": latency,
               "prompt_tokens": pt, "completion_tokens": ct,
               "total_tokens": pt + ct}
        kind = i % 10
        base = baseline(alias, pt, ct)
        if kind == 0:                       # cache hit: spent nothing
            rec.update(provider=None, upstream_model=None, cache="hit",
                       spend_nano=0)
            del rec["ttfb_ms"]
            spend, s_cache, s_route, chan = 0, base, 0, "(cache)"
            prov_name = "(cache)"
        elif kind == 1:                     # failed: no usage
            rec.update(status=502, error="upstream_error",
                       prompt_tokens=None, completion_tokens=None,
                       total_tokens=None, spend_nano=0)
            pt = ct = 0
            spend, s_cache, s_route = 0, 0, 0
            chan = "%s/%s" % (prov, UPSTREAM[(alias, prov)])
            prov_name = prov
            base = 0
        else:
            spend = cost(alias, prov, pt, ct)
            if kind != 2:                   # kind 2: priced from --config
                rec["spend_nano"] = spend
            s_cache, s_route = 0, base - spend
            chan = "%s/%s" % (prov, UPSTREAM[(alias, prov)])
            prov_name = prov
        sums = dict(requests=1, errors=int(rec["status"] >= 400),
                    cache_hits=int(kind == 0), prompt_tokens=pt,
                    completion_tokens=ct, spend=spend, baseline=base,
                    saved_cache=s_cache, saved_routing=s_route,
                    spend_estimated=int(kind == 2), latency=latency)
        for dim, name in (("total", "all"), ("provider", prov_name),
                          ("channel", chan), ("model", alias), ("key", key),
                          ("tenant", tenant), ("day", day)):
            bump(dim, name, **sums)
        lines.append(json_line(rec))
    return lines, exp


def json_line(rec):
    return json.dumps(rec, separators=(",", ":"))


def read_csv(stdout):
    rows = list(csv.DictReader(io.StringIO(stdout.decode())))
    return {(r["dimension"], r["name"]): r for r in rows}


def check_group(row, want):
    for k in ("requests", "errors", "cache_hits", "prompt_tokens",
              "completion_tokens", "spend_estimated"):
        assert int(row[k]) == want[k], (row["name"], k, row[k], want[k])
    for k in ("spend", "baseline", "saved_cache", "saved_routing"):
        assert nano(row[k]) == want[k], (row["name"], k, row[k], want[k])


def test_report_csv_exact_totals(tmp_path):
    lines, exp = make_log()
    conf = tmp_path / "ark.conf"
    conf.write_text(CONF)
    third = len(lines) // 3
    plain = tmp_path / "access.log"
    # a malformed line (line 3 of the plain file) and a blank line
    plain.write_text("\n".join(lines[:2] + ["{not json"] + [""]
                               + lines[2:third]) + "\n")
    gz = tmp_path / "access.log.1.gz"
    gz.write_bytes(gzip.compress(("\n".join(lines[third:2 * third]) + "\n")
                                 .encode()))
    stdin = gzip.compress("\n".join(lines[2 * third:]).encode())

    r = run("--config", str(conf), "--format", "csv", str(plain), str(gz),
            "-", stdin=stdin)
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "%s:3: malformed line skipped" % plain in err
    assert err.count("malformed line") == 1
    got = read_csv(r.stdout)
    assert set(got) == set(exp), sorted(set(got) ^ set(exp))
    for k, want in exp.items():
        check_group(got[k], want)
    # the totals add up: without Ark = spend + saved
    t = exp[("total", "all")]
    assert t["baseline"] == t["spend"] + t["saved_cache"] + t["saved_routing"]
    assert t["saved_cache"] > 0 and t["saved_routing"] > 0
    # latency percentiles per channel: nearest rank of the logged values
    for (dim, name), want in exp.items():
        if dim not in ("channel", "total"):
            continue
        row = got[(dim, name)]
        for pct in (50, 95, 99):
            assert float(row["latency_p%d_ms" % pct]) == \
                nearest_rank(want["latency"], pct), (name, pct)

    # a date range and one breakdown
    r = run("--config", str(conf), "--format", "csv", "--by", "day",
            "--from", DAYS[1], "--to", DAYS[1], str(plain), str(gz), "-",
            stdin=stdin)
    assert r.returncode == 0, r.stderr
    got = read_csv(r.stdout)
    assert set(got) == {("total", "all"), ("day", DAYS[1])}
    check_group(got[("total", "all")], exp[("day", DAYS[1])])


def test_report_html_and_text(tmp_path):
    lines, exp = make_log(seed=7, n=120)
    conf = tmp_path / "ark.conf"
    conf.write_text(CONF)
    log = tmp_path / "access.log.gz"
    log.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    t = exp[("total", "all")]

    r = run("--config", str(conf), "--format", "html", str(log))
    assert r.returncode == 0, r.stderr
    page = r.stdout.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert page.count("<svg") == 2
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    for amount in (t["spend"], t["baseline"], t["saved_cache"],
                   t["saved_routing"]):
        assert ">%s<" % money(amount) in page, money(amount)
    for day in DAYS:
        assert day in page

    r = run("--config", str(conf), str(log))
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    for title in ("Summary", "By provider", "By channel", "Latency by "
                  "channel (ms)", "By model", "By key", "By tenant",
                  "By day"):
        assert "\n%s\n" % title in "\n" + text, title
    assert money(t["spend"]) in text


def test_report_usage_errors(tmp_path):
    assert run("--by", "week").returncode == 2
    assert run("--format", "pdf").returncode == 2
    assert run("--from", "2026-02-30x").returncode == 2
    assert run("--estimate", "x.csv").returncode == 2   # needs --config
    r = run(str(tmp_path / "missing.log"))
    assert r.returncode == 1
    assert b"missing.log" in r.stderr
    r = run("--help")
    assert r.returncode == 0 and b"--estimate" in r.stdout


def test_estimate_exact(tmp_path):
    conf = tmp_path / "ark.conf"
    conf.write_text(CONF)
    rng = random.Random(11)
    rows, official, routed, routed_us = [], 0, 0, 0
    per_model = {}
    for i in range(50):
        # the usage export names upstream models; qwen-max maps to gpt-4o
        model = rng.choice(["gpt-4o", "gpt-4o-mini", "mini", "qwen-max"])
        alias = {"gpt-4o-mini": "mini", "qwen-max": "gpt-4o"}.get(model,
                                                                 model)
        pin, pout = rng.randint(0, 10**6), rng.randint(0, 10**5)
        costs = {p: cost(a, p, pin, pout) for (a, p) in PRICES if a == alias}
        off, cheap = max(costs.values()), min(costs.values())
        us = min(c for p, c in costs.items() if p != "qwen")
        official += off
        routed += cheap
        routed_us += us
        m = per_model.setdefault(alias, [0, 0])
        m[0] += off
        m[1] += cheap
        rows.append("openai,%s,%d,%d,2025-12-%02d" % (model, pin, pout,
                                                      1 + i % 28))
    rows.append("anthropic,claude-3,10,10,2025-12-01")   # not configured
    usage = tmp_path / "usage.csv"
    usage.write_text("provider,model,input_tokens,output_tokens,date\n"
                     + "\n".join(rows) + "\n")

    r = run("--config", str(conf), "--estimate", str(usage), "--format",
            "csv")
    assert r.returncode == 0, r.stderr
    assert b"claude-3" in r.stderr
    got = read_csv(r.stdout)
    total = got[("total", "all")]
    assert int(total["rows"]) == 50
    assert nano(total["official_cost"]) == official
    assert nano(total["routed_cost"]) == routed
    assert nano(total["savings"]) == official - routed
    for alias, (off, cheap) in per_model.items():
        assert nano(got[("model", alias)]["official_cost"]) == off
        assert nano(got[("model", alias)]["routed_cost"]) == cheap

    # compliance: a key limited to region=us never reaches qwen
    r = run("--config", str(conf), "--estimate", str(usage), "--format",
            "csv", "--require", "region=us")
    assert r.returncode == 0, r.stderr
    assert nano(read_csv(r.stdout)[("total", "all")]["routed_cost"]) \
        == routed_us

    r = run("--config", str(conf), "--estimate", str(usage), "--format",
            "html")
    assert r.returncode == 0, r.stderr
    page = r.stdout.decode()
    assert "<svg" in page and ">%s<" % money(official - routed) in page
