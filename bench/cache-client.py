#!/usr/bin/python3
"""Sends exactly N requests of one bench/cache-e2e.sh variant over one
kept-alive connection (for the deterministic profiles of
bench/cache-e2e.sh --profile: instruction and syscall counts per request
need an exact request count, which wrk does not give).

Usage: cache-client.py URL KEY VARIANT N   (VARIANT: hit, miss, static)
Exits 1 if any answer is not a 200 or, for hit/miss, has the wrong
x-ark-cache."""
import http.client
import json
import os
import sys
import urllib.parse

SYSTEM = ("You are a concise assistant. Answer in one or two sentences.")
QUESTION = ("What is the capital of France, and why has it been important "
            "historically?")


def body(variant, i):
    if variant == "hit":
        sysmsg, text = SYSTEM, QUESTION
    else:
        sysmsg = "You are a concise assistant."
        text = "Question %d-%d: what is the capital of France?" % (
            os.getpid(), i)
    return json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": sysmsg},
        {"role": "user", "content": text}],
        "temperature": 0.2, "max_tokens": 128}, separators=(",", ":"))


def main():
    url, key, variant, n = sys.argv[1], sys.argv[2], sys.argv[3], \
        int(sys.argv[4])
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    for i in range(n):
        if variant == "static":
            conn.request("GET", "/answer.json")
        else:
            conn.request("POST", "/v1/chat/completions", body(variant, i),
                         {"Authorization": "Bearer " + key,
                          "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        want = {"hit": "hit", "miss": "miss"}.get(variant)
        if resp.status != 200 or (want and
                                  resp.getheader("x-ark-cache") != want):
            print("request %d: %d x-ark-cache=%s" % (
                i, resp.status, resp.getheader("x-ark-cache")),
                file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
