#!/bin/bash
# ark-cached at scale: one namespace of N entries (100k by default, 1M
# with --million), through the daemon's RESP port, with a real
# redis-server as the L2 tier and index snapshots on. Measures, in one run:
#   - baseline: redis-benchmark GET latency (1 client) on the same machine;
#   - fill rate (bench/cache_load: pipelined ARK.STORE, ~1 KB answers,
#     unique ~100-byte questions);
#   - semantic lookup latency p50/p95/p99, one client, near-duplicate
#     questions (hits: embed, HNSW search, verify) and fresh ones (misses:
#     embed, search, verify the candidates above the threshold);
#   - RSS per entry after warm-up, with the index and L1 breakdown, against
#     1.5 x (vector + payload + text);
#   - shutdown time (snapshot save), restart time until a lookup hits again
#     (from the snapshot) and until the catch-up from Redis is over, and
#     the same restart without a snapshot (rebuild from Redis) as baseline;
#   - recall@1 of the HNSW index in the snapshot against exact search.
# Usage: bench/cache-scale.sh [--entries N | --million] [--queries Q]
#        [--recall-queries R] [--fill-seconds S] [--write-docs] [--out FILE]
#        [--ef N]   (the daemon's ef_search; default: its built-in default)
# --fill-seconds stops the fill after S seconds (a busy machine): the run
# then measures the entries stored by then and says so.
# Needs redis-server, redis-benchmark, redis-cli, a built ark-cached and
# bench/cache_load (make bench/cache_load). Memory: about 9 KB per entry
# for both processes (1M entries: ~9 GB).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
entries=100000 queries=5000 rqueries=500 write_docs=0 out="" fill_s=0 ef=""
while [ $# -gt 0 ]; do
    case "$1" in
    --entries) entries=$2; shift 2 ;;
    --million) entries=1000000 queries=3000 rqueries=200; shift ;;
    --queries) queries=$2; shift 2 ;;
    --fill-seconds) fill_s=$2; shift 2 ;;
    --recall-queries) rqueries=$2; shift 2 ;;
    --write-docs) write_docs=1; shift ;;
    --out) out=$2; shift 2 ;;
    --ef) ef=$2; shift 2 ;;
    *) echo "usage: $0 [--entries N | --million] [--queries Q] [--recall-queries R] [--fill-seconds S] [--write-docs] [--out FILE] [--ef N]" >&2; exit 2 ;;
    esac
done
req_entries=$entries
cached=${ARK_CACHED:-$top/ark-cached}
loader=${CACHE_LOAD:-$top/bench/cache_load}
[ -x "$cached" ] || { echo "build ark-cached first (make)" >&2; exit 1; }
[ -x "$loader" ] || { echo "build bench/cache_load first (make bench/cache_load)" >&2; exit 1; }
command -v redis-benchmark >/dev/null || { echo "install redis-tools" >&2; exit 1; }

tmp=$(mktemp -d /tmp/cache-scale.XXXXXX)
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port); cport=$(free_port)
rpid="" cpid=""
cleanup() {
    [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
    [ -n "$rpid" ] && kill "$rpid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" >/dev/null 2>&1 &
rpid=$!
start_cached() {
    "$cached" --bind 127.0.0.1 --port "$cport" --threads 2 \
        --logfile "$tmp/c.log" --loglevel info \
        --redis_host 127.0.0.1 --redis_port "$rport" \
        --redis_command_timeout_ms 1000 \
        --snapshot_dir "$tmp/snap" --snapshot_interval_s 0 \
        --l1_max_bytes 4gb ${ef:+--ef_search "$ef"} >/dev/null 2>&1 &
    cpid=$!
    while ! redis-cli -p "$cport" PING >/dev/null 2>&1; do sleep 0.02; done
}
stop_cached() {
    kill -TERM "$cpid"
    wait "$cpid" 2>/dev/null || true
    cpid=""
}
info() { redis-cli -p "$cport" INFO | tr -d '\r' | sed -n "s/^$1://p"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system) of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# Milliseconds of daemon CPU per operation between two cpu_ticks.
cpu_per() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) * 1000 / hz / n}'; }
while ! redis-cli -p "$rport" PING >/dev/null 2>&1; do sleep 0.05; done
load1=$(cut -d' ' -f1 /proc/loadavg)

# Baseline: redis-server GET, one client, on this machine now.
redis-cli -p "$rport" SET bench:key "$(printf '%01024d' 0)" >/dev/null
base=$(redis-benchmark -p "$rport" -c 1 -n 20000 --csv GET bench:key 2>/dev/null \
    | grep -v '^"test"' | tail -1 | tr -d '"')
base_p50=$(echo "$base" | cut -d, -f5); base_p99=$(echo "$base" | cut -d, -f7)
log "baseline redis GET (1 client): p50 $base_p50 ms, p99 $base_p99 ms"

start_cached
rss0=$(rss_kb "$cpid")
log "filling $entries entries"
if [ "$fill_s" != 0 ]; then
    fill=$("$loader" -p "$cport" -n scale-ns --seconds "$fill_s" fill "$entries")
else
    fill=$("$loader" -p "$cport" -n scale-ns fill "$entries")
fi
log "$fill"
entries=$(echo "$fill" | sed -n 's/^fill: \([0-9]*\) entries.*/\1/p')
# Warm-up: wait for the background switch to HNSW to finish.
while [ "$(info approx_namespaces)" != 1 ] || [ "$(info tombstones)" != 0 ]; do
    sleep 1
done
sleep 2
n_entries=$(info entries)
rss=$(rss_kb "$cpid")
index_bytes=$(info index_bytes); l1_bytes=$(info l1_bytes)
log "entries $n_entries, RSS $rss kB, index $index_bytes B, L1 $l1_bytes B"

c0=$(cpu_ticks "$cpid")
near=$("$loader" -p "$cport" -n scale-ns lookup near "$queries" "$entries")
c1=$(cpu_ticks "$cpid")
log "$near"
fresh=$("$loader" -p "$cport" -n scale-ns lookup fresh "$queries" "$entries")
c2=$(cpu_ticks "$cpid")
log "$fresh"
cpu_near=$(cpu_per "$c0" "$c1" "$queries"); cpu_fresh=$(cpu_per "$c1" "$c2" "$queries")
log "daemon CPU per lookup: near $cpu_near ms, fresh $cpu_fresh ms"
load2=$(cut -d' ' -f1 /proc/loadavg)

# Shutdown (saves the snapshot) and restart from it.
t0=$(now); stop_cached; t1=$(now)
shutdown_s=$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
snap=$(ls "$tmp"/snap/*.vix)
snap_mb=$(( $(stat -c %s "$snap") / 1048576 ))
log "shutdown with snapshot save: ${shutdown_s} s, snapshot $snap_mb MB"
t0=$(now); start_cached
wh=$("$loader" -p "$cport" -n scale-ns waithit $((12345 % entries)) 600)
t1=$(now)
restart_hit_s=$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
log "restart from snapshot: first hit after ${restart_hit_s} s ($wh)"
after=$("$loader" -p "$cport" -n scale-ns lookup near 500 "$entries")
log "lookups right after the restart: $after"
while [ "$(info catching_up)" != 0 ]; do sleep 0.2; done
t2=$(now)
catchup_s=$(awk -v a="$t2" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
ghosts=$(info ghosts_removed)
log "caught up with Redis ${catchup_s} s after start, ghosts removed $ghosts"
near2=$("$loader" -p "$cport" -n scale-ns lookup near "$queries" "$entries")
log "after catch-up: $near2"
rss_restart=$(rss_kb "$cpid")
stop_cached

# Baseline restart: no snapshot, rebuild from Redis.
cp "$snap" "$tmp/kept.vix"
rm -f "$tmp"/snap/*
t0=$(now); start_cached; t1=$(now)
wh2=$("$loader" -p "$cport" -n scale-ns waithit $((12345 % entries)) 900)
t2=$(now)
nosnap_ready_s=$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
nosnap_hit_s=$(awk -v a="$t2" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
log "restart without snapshot: port open after ${nosnap_ready_s} s, first hit after ${nosnap_hit_s} s"
slow=$("$loader" -p "$cport" -n scale-ns lookup near 20 "$entries")
log "lookups before the HNSW rebuild: $slow"
kill -KILL "$cpid"; wait "$cpid" 2>/dev/null || true; cpid=""

rec=$("$loader" recall "$tmp/kept.vix" "$rqueries" "$entries")
log "$rec"

# ---- summary
field() { echo "$1" | sed -n "s/.*$2 \([0-9.]*\).*/\1/p"; }
p50n=$(field "$near" p50); p95n=$(field "$near" p95); p99n=$(field "$near" p99)
p50f=$(field "$fresh" p50); p95f=$(field "$fresh" p95); p99f=$(field "$fresh" p99)
hitsn=$(echo "$near" | sed -n 's/.* \([0-9]*\) hits.*/\1/p')
hitsf=$(echo "$fresh" | sed -n 's/.* \([0-9]*\) hits.*/\1/p')
p99a=$(field "$after" p99); p99n2=$(field "$near2" p99)
rate=$(echo "$fill" | sed -n 's/.* \([0-9]*\) entries\/s.*/\1/p')
avg_text=$(echo "$fill" | sed -n 's/.*avg text \([0-9]*\).*/\1/p')
rn=$(echo "$rec" | sed -n 's/^recall@1 near: \([0-9.]*\).*/\1/p')
rf=$(echo "$rec" | sed -n 's/^recall@1 fresh: \([0-9.]*\).*/\1/p')
per_entry=$(( (rss - rss0) * 1024 / n_entries ))
target=$(( (384 * 4 + 1024 + avg_text) * 3 / 2 ))
idx_per=$(( index_bytes / n_entries )); l1_per=$(( l1_bytes / n_entries ))
summary=$(cat <<EOF
| what | value |
| --- | --- |
| entries in the namespace | $n_entries |
| other CPU load (load average before / after the lookups) | $load1 / $load2 |
| HNSW efSearch (ef_search) | ${ef:-built-in default} |
| fill through ARK.STORE (2 connections, pipeline 64) | $rate entries/s |
| baseline: redis-server GET, 1 client, p50 / p99 | $base_p50 / $base_p99 ms |
| semantic lookup, near duplicate (hit), 1 client, p50 / p95 / p99 | $(echo "$p50n / $p95n / $p99n" | awk '{printf "%.2f / %.2f / %.2f ms", $1/1000, $3/1000, $5/1000}') ($hitsn of $queries hit) |
| semantic lookup, fresh question (miss), p50 / p95 / p99 | $(echo "$p50f / $p95f / $p99f" | awk '{printf "%.2f / %.2f / %.2f ms", $1/1000, $3/1000, $5/1000}') ($hitsf of $queries hit) |
| daemon CPU per lookup (all threads), near / fresh | $cpu_near / $cpu_fresh ms |
| near-duplicate p99 vs redis GET p99 | $(awk -v a="$p99n" -v b="$base_p99" 'BEGIN {printf "%.1f x", a / 1000 / b}') |
| recall@1 HNSW vs exact, near / fresh ($rqueries queries each) | $rn / $rf |
| RSS per entry (RSS growth / entries) | $per_entry B |
| of which index (cs_index_memory) / L1 payload | $idx_per B / $l1_per B |
| target 1.5 x (vector 1536 + payload 1024 + text $avg_text) | $target B |
| shutdown incl. snapshot save | $shutdown_s s ($snap_mb MB) |
| restart from snapshot: first hit | $restart_hit_s s |
| restart from snapshot: near p99 during catch-up / after | $(awk -v a="$p99a" -v b="$p99n2" 'BEGIN {printf "%.2f / %.2f ms", a/1000, b/1000}') |
| restart from snapshot: catch-up from Redis done | $catchup_s s (ghosts removed: $ghosts) |
| restart without snapshot: first hit (exact search until HNSW is rebuilt) | $nosnap_hit_s s |
| RSS per entry after the restart (payloads not in L1) | $(( rss_restart * 1024 / n_entries )) B |
EOF
)
echo
echo "ark-cached at scale, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
echo "$summary"
[ -n "$out" ] && { echo "$summary" > "$out"; echo "$rec" >> "$out"; }

if [ "$write_docs" = 1 ]; then
    doc=$top/docs/performance.md
    block=$tmp/block.md
    {
        echo "<!-- cache-scale:$req_entries:begin -->"
        echo "\`bench/cache-scale.sh --entries $entries\`, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs:"
        echo
        echo "$summary"
        echo "<!-- cache-scale:$req_entries:end -->"
    } > "$block"
    if grep -q "<!-- cache-scale:$req_entries:begin -->" "$doc"; then
        /usr/bin/python3 - "$doc" "$block" "$req_entries" <<'PY'
import re, sys
doc, block, n = sys.argv[1], sys.argv[2], sys.argv[3]
s = open(doc).read()
b = open(block).read().rstrip("\n")
pat = re.compile(r"<!-- cache-scale:%s:begin -->.*?<!-- cache-scale:%s:end -->" % (n, n), re.S)
open(doc, "w").write(pat.sub(lambda m: b, s))
PY
        log "docs/performance.md updated"
    else
        log "no <!-- cache-scale:$req_entries:begin --> marker in docs/performance.md: add one"
    fi
fi
