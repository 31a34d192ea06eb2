#!/bin/sh
# ark-cached against redis-server, in one run, alternating:
#   exact-hit ARK.LOOKUP vs redis GET (redis-benchmark, 50 clients, no
#   pipelining), then semantic lookups (near-duplicate texts, the builtin
#   embedder, verification on) at a given namespace size, with latency
#   percentiles from redis-benchmark.
# Usage: bench/cache-bench.sh [--rounds N] [--requests N] [--entries N]
# Needs: redis-server, redis-benchmark (Debian: redis-server, redis-tools)
# and a built ark-cached (make).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 requests=100000 entries=20000
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --entries) entries=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--requests N] [--entries N]" >&2; exit 2 ;;
    esac
done
cached=${ARK_CACHED:-$top/ark-cached}
[ -x "$cached" ] || cached=$top/build/ark-cached
[ -x "$cached" ] || { echo "build ark-cached first (make)" >&2; exit 1; }
command -v redis-benchmark >/dev/null || { echo "install redis-tools" >&2; exit 1; }

tmp=$(mktemp -d)
rport=$(( 20000 + $$ % 10000 )); cport=$(( rport + 1 ))
redis-server --port $rport --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" >/dev/null 2>&1 &
rpid=$!
"$cached" --bind 127.0.0.1 --port $cport --threads 2 --logfile "$tmp/c.log" \
    --l1_max_bytes 1gb >/dev/null 2>&1 &
cpid=$!
trap 'kill $rpid $cpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
for _ in $(seq 50); do
    redis-cli -p $cport PING >/dev/null 2>&1 && redis-cli -p $rport PING >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p $rport SET bench:key "$(printf '%0512d' 0)" >/dev/null
redis-cli -p $cport ARK.STORE bench-ns "What is the capital of France?" \
    "$(printf '%0512d' 0)" TTL 3600 >/dev/null

# redis-benchmark --csv: "test","rps","avg","min","p50","p95","p99","max"
field() { grep -v '^"test"' | tail -1 | tr -d '"' | cut -d, -f"$1"; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "exact-hit lookups, 50 clients, no pipelining, 512-byte payload"
printf "%-6s %12s %12s\n" round redis-GET ark-LOOKUP
i=1
while [ $i -le "$rounds" ]; do
    a=$(redis-benchmark -p $rport -c 50 -n "$requests" --csv GET bench:key \
        2>/dev/null | field 2)
    b=$(redis-benchmark -p $cport -c 50 -n "$requests" --csv \
        ARK.LOOKUP bench-ns "What is the capital of France?" 2>/dev/null \
        | field 2)
    printf "%-6s %12s %12s\n" $i "$a" "$b"
    echo "$a" >> "$tmp/a"
    echo "$b" >> "$tmp/b"
    i=$((i + 1))
done
ma=$(median < "$tmp/a"); mb=$(median < "$tmp/b")
awk -v a="$ma" -v b="$mb" 'BEGIN {printf "median: redis GET %.0f req/s, ARK.LOOKUP %.0f req/s, ratio %.2f x\n", a, b, b / a}'

echo
echo "semantic lookups: $entries entries in one namespace, near-duplicate query"
n=0
while [ $n -lt "$entries" ]; do
    printf 'ARK.STORE sem-ns "question %d about topic %d and item %d?" "answer %d" TTL 3600\r\n' \
        $n $((n % 97)) $((n * 7 % 1009)) $n
    n=$((n + 1))
done | redis-cli -p $cport --pipe >/dev/null
redis-cli -p $cport INFO | grep -E "^(entries|vectors|approx_namespaces):"
redis-benchmark -p $cport -c 10 -n 20000 --csv ARK.LOOKUP sem-ns \
    "Question 4242 about topic 71 and item 4447" 2>/dev/null > "$tmp/sem"
tr -d '"' < "$tmp/sem" | awk -F, 'NR > 1 {printf "semantic lookup: %s req/s, p50 %s ms, p95 %s ms, p99 %s ms\n", $2, $5, $6, $7}'
redis-cli -p $cport ARK.LOOKUP sem-ns "Question 4242 about topic 71 and item 4447" | head -2
redis-cli -p $cport INFO | grep -E "^(hits_|misses|verify_)"
