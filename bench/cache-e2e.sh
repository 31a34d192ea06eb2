#!/bin/sh
# End to end through httpd, in one run, alternating:
#   hit     mod_ark with ArkCache on, every request the same question
#           (answered by ark-cached)
#   miss    the same location, every request a new question (lookup,
#           upstream call to nginx, store)
#   static  httpd serving the same chat.completion JSON as a static file
# Reports medians of req/s and p50/p99 and the targets: hit p50 at least
# 2 x faster than miss, hit throughput at least 0.5 x static.
# Usage: bench/cache-e2e.sh [--rounds N] [--duration D] [--connections N]
# Needs: nginx (nginx-light), wrk, apache2, a built tree (make).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 duration=8s conns=32
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration D] [--connections N]" >&2; exit 2 ;;
    esac
done
build=$top; [ -f "$build/.libs/mod_ark.so" ] || build=$top/build
for b in nginx wrk apache2; do
    command -v $b >/dev/null || [ -x /usr/sbin/$b ] \
        || { echo "missing $b (Debian: nginx-light, wrk, apache2)" >&2; exit 1; }
done
tmp=$(mktemp -d)
chmod 755 "$tmp"   # httpd children (www-data) serve the static file from it
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port); ST=$(port); GW=$(port); CP=$(port)
mkdir -p "$tmp/ngx/logs" "$tmp/ngx/tmp" "$tmp/www" "$tmp/logs" "$tmp/run"
chmod 755 "$tmp/www"
sed -e "s|@PREFIX@|$tmp/ngx|g" -e "s|@PORT@|$UP|g" -e "s|@STATUS_PORT@|$ST|g" \
    "$top/bench/upstream-nginx.conf.in" > "$tmp/ngx/nginx.conf"
nginx -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/logs/error.log" &
ngx=$!
"$build/ark-cached" --bind 127.0.0.1 --port $CP --threads 2 \
    --logfile "$tmp/cached.log" &
cpid=$!
cleanup() {
    [ -f "$tmp/run/httpd.pid" ] && kill "$(cat "$tmp/run/httpd.pid")" 2>/dev/null
    kill $ngx $cpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do
    redis-cli -p $CP PING >/dev/null 2>&1 \
        && curl -s -o /dev/null -X POST http://127.0.0.1:$UP/v1/chat/completions \
        && break
    sleep 0.1
done
curl -s -X POST http://127.0.0.1:$UP/v1/chat/completions > "$tmp/www/answer.json"
key=$("$build/ark-keys" create -c -f "$tmp/keys" -n bench 2>/dev/null)
user=""; [ "$(id -u)" = 0 ] && user="User www-data
Group www-data"
mods=$(apxs -q LIBEXECDIR)
cat > "$tmp/httpd.conf" <<CONF
ServerRoot "$tmp"
DefaultRuntimeDir "$tmp/run"
PidFile "$tmp/run/httpd.pid"
Mutex file:$tmp/run default
Listen 127.0.0.1:$GW
ServerName 127.0.0.1
ErrorLog "$tmp/logs/error.log"
LogLevel warn
LoadModule mpm_event_module "$mods/mod_mpm_event.so"
LoadModule authz_core_module "$mods/mod_authz_core.so"
LoadModule mime_module "$mods/mod_mime.so"
LoadModule ark_module "$build/.libs/mod_ark.so"
TypesConfig /etc/mime.types
$user
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
MinSpareThreads 1
MaxSpareThreads 64
KeepAlive On
MaxKeepAliveRequests 0
DocumentRoot "$tmp/www"
<Directory "$tmp/www">
    Require all granted
</Directory>
ArkKeysFile "$tmp/keys"
ArkProvider bench openai http://127.0.0.1:$UP/v1 key=env:ARK_BENCH_PROVIDER_KEY
ArkModel gpt-4o-mini bench gpt-4o-mini-2024-07-18
ArkCacheServer 127.0.0.1:$CP
<Location /v1>
    SetHandler ark-gateway
    ArkCache on max-temperature=0.5
</Location>
CONF
chmod 640 "$tmp/keys"
ARK_BENCH_PROVIDER_KEY=sk-bench /usr/sbin/apache2 -d "$tmp" -f "$tmp/httpd.conf" -k start
for _ in $(seq 100); do
    grep -q "resuming normal operations" "$tmp/logs/error.log" 2>/dev/null && break
    sleep 0.1
done
sleep 0.5
export ARK_BENCH_KEY="$key" ARK_BENCH_DIR="$top/bench"
url=http://127.0.0.1:$GW
curl -s -o /dev/null -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
    -d @- $url/v1/chat/completions <<'JSON'
{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant. Answer in one or two sentences."},{"role":"user","content":"What is the capital of France, and why has it been important historically?"}],"temperature":0.2,"max_tokens":128}
JSON
sleep 0.5
h=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $key" -H "Content-Type: application/json" \
    --data-binary '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant. Answer in one or two sentences."},{"role":"user","content":"What is the capital of France, and why has it been important historically?"}],"temperature":0.2,"max_tokens":128}' \
    $url/v1/chat/completions | tr -d '\r' | awk -F': ' 'tolower($1)=="x-ark-cache" {print $2}')
[ "$h" = hit ] || { echo "warm-up did not produce a cache hit ($h)" >&2; redis-cli -p $CP INFO | grep -E "^(stores|misses|hits_|errors)" >&2; tail -3 "$tmp/cached.log" >&2; exit 1; }

run() {  # variant -> "rps p50 p99"
    case $1 in
    hit)    wrk -t2 -c$conns -d$duration -s "$top/bench/chat.lua" $url/v1/chat/completions ;;
    miss)   wrk -t2 -c$conns -d$duration -s "$top/bench/chat-unique.lua" $url/v1/chat/completions ;;
    static) wrk -t2 -c$conns -d$duration -s "$top/bench/get.lua" $url/answer.json ;;
    esac | awk '/^BENCH/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                 print v["rps"], v["p50_us"], v["p99_us"], v["non2xx"] }'
}
printf "%-7s %-6s %10s %9s %9s %7s\n" variant round req/s p50_us p99_us non2xx
i=1
while [ $i -le $rounds ]; do
    for v in static hit miss; do
        set -- $(run $v)
        printf "%-7s %-6s %10s %9s %9s %7s\n" $v $i "$1" "$2" "$3" "$4"
        echo "$1 $2 $3" >> "$tmp/$v"
    done
    i=$((i + 1))
done
med() { sort -n -k"$2" "$tmp/$1" | awk -v c="$2" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'; }
sr=$(med static 1); hr=$(med hit 1); mr=$(med miss 1)
hp=$(med hit 2); mp=$(med miss 2); sp=$(med static 2)
awk -v sr=$sr -v hr=$hr -v mr=$mr -v hp=$hp -v mp=$mp -v sp=$sp 'BEGIN {
    printf "\nmedians: static %.0f req/s p50 %d us; hit %.0f req/s p50 %d us; miss %.0f req/s p50 %d us\n", sr, sp, hr, hp, mr, mp
    printf "hit p50 is %.2f x faster than miss (target >= 2): %s\n", mp / hp, (mp / hp >= 2 ? "met" : "MISSED")
    printf "hit throughput is %.2f x static (target >= 0.5): %s\n", hr / sr, (hr / sr >= 0.5 ? "met" : "MISSED") }'
grep -E "^(hits_|misses|stores)" "$tmp/cached.log" 2>/dev/null || true
