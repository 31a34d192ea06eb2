#!/bin/bash
# End to end through httpd, in one run, alternating:
#   hit     mod_ark with ArkCache on, every request the same question
#           (answered by ark-cached)
#   miss    the same location, every request a new question (lookup,
#           upstream call to nginx, store)
#   static  httpd serving the same chat.completion JSON as a static file
# For each number of connections (default 1, 4 and 32): medians over the
# rounds of req/s and p50/p99, and the targets: hit p50 at least 2 x
# faster than miss, hit throughput at least 0.5 x static. "other CPU" is
# the share of the machine's CPU used by processes outside this benchmark
# while wrk ran (the figures are only meaningful when it is low).
#
# --profile strace: instead of wrk, sends exactly --requests N requests
# of each variant over one kept-alive connection (bench/cache-client.py)
# with strace -c attached to the httpd child and to ark-cached, and
# prints syscalls per request for each (deterministic, so usable on a
# busy machine).
# ARK_PERF_DIR=DIR (wrk mode): perf record (cpu-clock) of httpd and
# ark-cached during the first round of each variant, into DIR.
#
# Usage: bench/cache-e2e.sh [--rounds N] [--duration D]
#            [--connections "1 4 32"] [--profile strace] [--requests N]
#            [--unix] [--packaged] [--pin]
# --unix: mod_ark reaches ark-cached over a Unix socket instead of TCP.
# --pin: the servers (nginx, ark-cached, httpd) on CPU 1 and wrk on CPU 0
#   (taskset), so that every variant runs with the same placement: at one
#   connection, unpinned runs swing 3 x between rounds with where the
#   scheduler puts wrk and the httpd thread (same or other CPU).
# --packaged: use the installed Debian packages (libapache2-mod-ark's
#   /usr/lib/apache2/modules/mod_ark.so and /usr/bin/ark-keys, ark-cached's
#   /usr/sbin/ark-cached) instead of the built tree; prints their versions.
# Needs: nginx (nginx-light), wrk, apache2, a built tree (make); strace
# for --profile, perf for ARK_PERF_DIR.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 duration=8s conns="1 4 32" profile="" requests=200 unix=0 packaged=0 spin="" cpin=""
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --unix) unix=1; shift ;;
    --packaged) packaged=1; shift ;;
    --pin) spin="taskset -c 1" cpin="taskset -c 0"; shift ;;
    *) echo "usage: $0 [--rounds N] [--duration D] [--connections \"1 4 32\"] [--profile strace] [--requests N] [--unix] [--packaged] [--pin]" >&2; exit 2 ;;
    esac
done
case "$profile" in ""|strace) ;; *) echo "--profile: strace" >&2; exit 2 ;; esac
build=$top; [ -f "$build/.libs/mod_ark.so" ] || build=$top/build
module=$build/.libs/mod_ark.so cached=$build/ark-cached keys=$build/ark-keys
if [ $packaged = 1 ]; then
    module=/usr/lib/apache2/modules/mod_ark.so cached=/usr/sbin/ark-cached
    keys=/usr/bin/ark-keys
    for pkg in libapache2-mod-ark ark-cached; do
        v=$(dpkg-query -W -f '${Version}' $pkg 2>/dev/null) \
            || { echo "--packaged: $pkg is not installed" >&2; exit 1; }
        echo "packaged build: $pkg $v"
    done
fi
for b in nginx wrk apache2 $profile; do
    command -v $b >/dev/null || [ -x /usr/sbin/$b ] \
        || { echo "missing $b (Debian: nginx-light, wrk, apache2, strace)" >&2; exit 1; }
done
tmp=$(mktemp -d)
chmod 755 "$tmp"   # httpd children (www-data) serve the static file from it
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port); ST=$(port); GW=$(port); CP=$(port)
mkdir -p "$tmp/ngx/logs" "$tmp/ngx/tmp" "$tmp/www" "$tmp/logs" "$tmp/run" "$tmp/prof"
chmod 755 "$tmp/www"
sed -e "s|@PREFIX@|$tmp/ngx|g" -e "s|@PORT@|$UP|g" -e "s|@STATUS_PORT@|$ST|g" \
    "$top/bench/upstream-nginx.conf.in" > "$tmp/ngx/nginx.conf"
$spin nginx -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/logs/error.log" &
ngx=$!
sock=""
[ $unix = 1 ] && sock="--unixsocket $tmp/cached.sock --unixsocketperm 777"
$spin "$cached" --bind 127.0.0.1 --port $CP $sock \
    --threads 2 --logfile "$tmp/cached.log" &
cpid=$!
cleanup() {
    [ -f "$tmp/run/httpd.pid" ] && kill "$(cat "$tmp/run/httpd.pid")" 2>/dev/null
    kill $ngx $cpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for _ in $(seq 300); do
    redis-cli -p $CP PING >/dev/null 2>&1 \
        && curl -s -o /dev/null -X POST http://127.0.0.1:$UP/v1/chat/completions \
        && break
    sleep 0.1
done
curl -s -X POST http://127.0.0.1:$UP/v1/chat/completions > "$tmp/www/answer.json"
key=$("$keys" create -c -f "$tmp/keys" -n bench 2>/dev/null)
user=""; [ "$(id -u)" = 0 ] && user="User www-data
Group www-data"
mods=$(apxs -q LIBEXECDIR)
# the default call timeout (50ms) is shorter than the queueing of 32
# connections on a busy 2-CPU machine: a late lookup would fail open to
# the upstream and turn "hit" requests into misses (see hits%)
timeouts="ArkCacheTimeout connect=200ms call=1s"
server=127.0.0.1:$CP
[ $unix = 1 ] && server=unix:$tmp/cached.sock
[ -n "$profile" ] && timeouts="ArkCacheTimeout connect=2s call=5s"
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
LoadModule ark_module "$module"
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
ArkCacheServer $server
$timeouts
<Location /v1>
    SetHandler ark-gateway
    ArkCache on max-temperature=0.5
</Location>
CONF
chmod 640 "$tmp/keys"
export ARK_BENCH_PROVIDER_KEY=sk-bench
$spin /usr/sbin/apache2 -d "$tmp" -f "$tmp/httpd.conf" -k start
for _ in $(seq 100); do
    grep -q "resuming normal operations" "$tmp/logs/error.log" 2>/dev/null && break
    sleep 0.1
done
sleep 0.5
hroot=$(cat "$tmp/run/httpd.pid")
hpid=$(pgrep -P "$hroot" | head -1)   # ServerLimit 1: the one child
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

# ------------------------------------------------------------ profiles
client() { /usr/bin/python3 "$top/bench/cache-client.py" "$url" "$key" "$@"; }
if [ "$profile" = strace ]; then
    for v in static hit miss; do
        client $v 20
        sleep 1
        strace -f -c -o "$tmp/prof/httpd.$v" -p $hpid 2>/dev/null &
        s1=$!
        strace -f -c -o "$tmp/prof/cached.$v" -p $cpid 2>/dev/null &
        s2=$!
        sleep 2                         # attached
        client $v "$requests"
        sleep 1
        kill -INT $s1 $s2; wait $s1 $s2 2>/dev/null || true
        for p in httpd cached; do
            echo "== $v: $p syscalls per request ($requests requests; futex/epoll_wait include idle threads)"
            awk -v n="$requests" '$1 ~ /^[0-9.]+$/ && NF >= 5 { name = $NF; calls = $4;
                    printf "  %-16s %6.2f\n", name, calls / n }
                  ' "$tmp/prof/$p.$v"
        done
    done
    exit 0
fi

# ------------------------------------------------------------ wrk
cpu_ticks() {  # CPU ticks used so far by the process trees of the pids
    /usr/bin/python3 "$top/bench/tree_ticks.py" "$@"
}
sys_ticks() { awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
child_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }

# ark-cached's lookups so far: "hits misses"
lookups() { redis-cli -p $CP INFO | tr -d '\r' | awk -F: '/^hits_/ { h += $2 } /^misses:/ { m = $2 } END { print h + 0, m + 0 }'; }

run() {  # variant connections -> "rps p50 p99 non2xx other_cpu_pct hit_pct"
    local t0 t1 o0 o1 w0 w1 l0 l1 out=$tmp/wrk.out
    l0=$(lookups)
    t0=$(sys_ticks); o0=$(cpu_ticks $ngx $cpid $hroot); w0=$(child_ticks)
    if [ -n "${ARK_PERF_DIR:-}" ] && [ ! -f "$ARK_PERF_DIR/$1.c$2.data" ]; then
        # optional CPU samples of httpd and ark-cached (first round only)
        perf record -q -e cpu-clock -F 999 -g -o "$ARK_PERF_DIR/$1.c$2.data" \
            -p "$(pgrep -d, -P "$hroot"),$cpid" > /dev/null 2>&1 &
        perf_pid=$!
        sleep 0.3
    fi
    case $1 in
    hit)    $cpin wrk -t$(( $2 < 2 ? 1 : 2 )) -c$2 -d$duration -s "$top/bench/chat.lua" $url/v1/chat/completions ;;
    miss)   ARK_BENCH_RUN="$$-$1-$2-$(date +%s%N)" $cpin wrk -t$(( $2 < 2 ? 1 : 2 )) -c$2 -d$duration -s "$top/bench/chat-unique.lua" $url/v1/chat/completions ;;
    static) $cpin wrk -t$(( $2 < 2 ? 1 : 2 )) -c$2 -d$duration -s "$top/bench/get.lua" $url/answer.json ;;
    esac > "$out"
    [ -n "${perf_pid:-}" ] && { kill -INT $perf_pid; wait $perf_pid || true; perf_pid=""; }
    t1=$(sys_ticks); o1=$(cpu_ticks $ngx $cpid $hroot); w1=$(child_ticks)
    l1=$(lookups)
    awk -v t0="$t0" -v t1="$t1" -v ours=$((o1 - o0 + w1 - w0)) -v l0="$l0" -v l1="$l1" '
        /^BENCH/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
        END { split(t0, a, " "); split(t1, b, " ")
              busy = b[1] - a[1]; total = b[2] - a[2]
              other = total > 0 ? 100 * (busy - ours) / total : 0
              split(l0, c, " "); split(l1, d, " "); n = v["requests"]
              # share of the requests ark-cached answered as hits (a
              # lookup over ArkCacheTimeout fails open to the upstream)
              hits = n > 0 ? 100 * (d[1] - c[1]) / n : 0
              print v["rps"], v["p50_us"], v["p99_us"], v["non2xx"], (other < 0 ? 0 : other), hits }' "$out"
}
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-5s %-7s %-5s %10s %9s %9s %7s %9s %6s\n" conns variant round req/s p50_us p99_us non2xx other_cpu% hits%
for c in $conns; do
    i=1
    while [ $i -le $rounds ]; do
        for v in static hit miss; do
            set -- $(run $v $c)
            printf "%-5s %-7s %-5s %10s %9s %9s %7s %9.0f %6.0f\n" $c $v $i "$1" "$2" "$3" "$4" "$5" "$6"
            echo "$1 $2 $3 $5 $6" >> "$tmp/$v.$c"
        done
        i=$((i + 1))
    done
done
med() { sort -n -k"$2" "$tmp/$1" | awk -v c="$2" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'; }
echo
echo "summary (medians over $rounds rounds of $duration; load average at end: $(cut -d' ' -f1-3 /proc/loadavg))"
for c in $conns; do
    awk -v c=$c -v sr=$(med static.$c 1) -v hr=$(med hit.$c 1) -v mr=$(med miss.$c 1) \
        -v sp=$(med static.$c 2) -v hp=$(med hit.$c 2) -v mp=$(med miss.$c 2) \
        -v oc=$(cat "$tmp"/*.$c | awk '{s += $4} END {printf "%.0f", s / NR}') \
        -v hh=$(awk '{s += $5} END {printf "%.1f", s / NR}' "$tmp/hit.$c") \
        -v mh=$(awk '{s += $5} END {printf "%.1f", s / NR}' "$tmp/miss.$c") 'BEGIN {
        printf "-c%-3s static %6.0f req/s p50 %5d us | hit %6.0f req/s p50 %5d us | miss %6.0f req/s p50 %5d us | other CPU %s%%\n", c, sr, sp, hr, hp, mr, mp, oc
        printf "      hit p50 %.2f x faster than miss (target >= 2): %s; hit throughput %.2f x static (target >= 0.5): %s\n", mp / hp, (mp / hp >= 2 ? "met" : "MISSED"), hr / sr, (hr / sr >= 0.5 ? "met" : "MISSED")
        if (hh < 99 || mh > 1)
            printf "      INVALID: hit variant %s%% hits, miss variant %s%% hits\n", hh, mh }'
done
