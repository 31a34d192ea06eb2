#!/bin/bash
# Gateway overhead benchmark: plain mod_proxy vs mod_ark, same httpd.
#
# Starts one nginx ("the provider", bench/upstream-nginx.conf.in) that
# answers POST /v1/chat/completions with a fixed chat.completion, and two
# httpd instances with identical MPM event settings, each on its own port:
#
#   (a) proxy  mod_proxy + mod_proxy_http, ProxyPass /v1/ -> nginx
#   (b) ark    mod_ark: ArkProvider/ArkModel -> the same nginx
#
# Both are warmed up, then wrk (bench/chat.lua) runs against them
# alternately a,b,a,b,... for --rounds rounds. For every run it records
# throughput and latency percentiles (wrk done() hook, microseconds), the
# CPU time the httpd and nginx processes used, and how many TCP
# connections nginx saw: new connections accepted during the run
# (stub_status) and distinct connections that carried requests ($connection
# in nginx's access log). Medians per variant are compared with the target
# (issue 7: throughput >= 0.9 x mod_proxy, p99 within +0.5 ms).
#
# Usage: bench/run-gateway-bench.sh [--rounds N] [--duration 10s]
#            [--connections 32] [--threads 2] [--warmup 3s]
#            [--threads-per-child 64] [--access-logs] [--write-docs]
#            [--perf DIR] [--keep] [--channels N]
#
# --perf DIR  also samples each httpd with perf (linux-perf, cpu-clock at
#             999 Hz, DWARF call graphs) during round 1 and writes
#             DIR/perf-{a,b}.data, DIR/report-{a,b}-self.txt and
#             DIR/summary.md (CPU us per request by component, from
#             bench/perf-summary.py); perf slows the sampled httpd, so
#             figures of such a run are not comparable
#
# Needs: nginx (Debian package nginx-light or nginx), wrk (wrk),
# apache2 + apxs (apache2, apache2-dev), python3, and a built tree
# (make): .libs/mod_ark.so and ark-keys. Installs nothing.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$SRC/bench"
BUILD=${ARK_BUILD_DIR:-$SRC}
HTTPD=${ARK_HTTPD:-/usr/sbin/apache2}
NGINX=${NGINX:-nginx}
PY=${PYTHON:-/usr/bin/python3}
MODULE="$BUILD/.libs/mod_ark.so"
ARK_KEYS="$BUILD/ark-keys"
DOC="$SRC/docs/performance.md"

ROUNDS=3
DURATION=10s
CONNECTIONS=32
THREADS=2
WARMUP=3s
TPC=64
ACCESS_LOGS=0
WRITE_DOCS=0
KEEP=0
CHANNELS=1
PERF_DIR=""
COMMAND="bench/run-gateway-bench.sh${*:+ $*}"

usage() {
    if [ "${1:-0}" = 0 ]; then
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
    else
        echo "usage: bench/run-gateway-bench.sh [--rounds N] [--duration 10s] [--connections 32] [--threads 2] [--warmup 3s] [--threads-per-child 64] [--access-logs] [--write-docs] [--perf DIR] [--keep]" >&2
    fi
    exit "${1:-0}"
}

die() { echo "run-gateway-bench: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
    --rounds)            ROUNDS=${2:?}; shift 2 ;;
    --duration)          DURATION=${2:?}; shift 2 ;;
    --connections|-c)    CONNECTIONS=${2:?}; shift 2 ;;
    --threads|-t)        THREADS=${2:?}; shift 2 ;;
    --warmup)            WARMUP=${2:?}; shift 2 ;;
    --threads-per-child) TPC=${2:?}; shift 2 ;;
    --access-logs)       ACCESS_LOGS=1; shift ;;
    --write-docs)        WRITE_DOCS=1; shift ;;
    --keep)              KEEP=1; shift ;;
    --channels)          CHANNELS=${2:?}; shift 2 ;;
    --perf)              PERF_DIR=${2:?}; shift 2 ;;
    -h|--help)           usage 0 ;;
    *)                   echo "unknown option: $1" >&2; usage 2 ;;
    esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "--connections must be a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer"
[[ "$TPC" =~ ^[1-9][0-9]*$ ]] || die "--threads-per-child must be a positive integer"
[[ "$DURATION" =~ ^[0-9]+[smh]?$ ]] || die "--duration: e.g. 10s"
[[ "$WARMUP" =~ ^[0-9]+[smh]?$ ]] || die "--warmup: e.g. 3s"

# ------------------------------------------------------------ prerequisites
need() {   # command, Debian package
    command -v "$1" >/dev/null 2>&1 \
        || die "'$1' not found: install the Debian package $2 (apt-get install $2)"
}
need "$NGINX" "nginx-light (or nginx)"
need wrk wrk
need "$HTTPD" apache2
need apxs apache2-dev
need "$PY" python3
[ -f "$MODULE" ] || die "$MODULE missing: build first (cd $SRC && make)"
if [ -n "$PERF_DIR" ]; then
    need perf linux-perf
    mkdir -p "$PERF_DIR"
    PERF_DIR=$(cd "$PERF_DIR" && pwd)
fi
[ -x "$ARK_KEYS" ] || die "$ARK_KEYS missing: build first (cd $SRC && make)"
MODULE_BUILT=$(date -u -r "$MODULE" '+%Y-%m-%d %H:%M')
SYSMOD=$(apxs -q LIBEXECDIR)
for m in mod_mpm_event mod_authz_core mod_proxy mod_proxy_http; do
    [ -f "$SYSMOD/$m.so" ] || die "$SYSMOD/$m.so missing (Debian package apache2)"
done

# How busy the machine is before anything starts: other work on these
# cores lowers and scatters the figures (alternating a,b keeps the ratio
# fair, not the absolute numbers).
cpu_busy() {
    "$PY" - <<'PY'
import time
def snap():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]
t0, i0 = snap(); time.sleep(2); t1, i1 = snap()
print("%.0f" % (100.0 * (1 - (i1 - i0) / max(t1 - t0, 1))))
PY
}
BUSY_BEFORE=$(cpu_busy)
echo "CPU busy before start (other work): $BUSY_BEFORE%"
if [ "$BUSY_BEFORE" -gt 15 ]; then
    echo "warning: the machine is not idle; figures will be noisy" >&2
fi
export BENCH_BUSY_BEFORE=$BUSY_BEFORE

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d /tmp/ark-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
WRK_PID=""
PERF_PID=""

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    if [ -n "$WRK_PID" ]; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
    fi
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
        echo "run-gateway-bench: files kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {   # port, pid, what
    local i
    for i in $(seq 100); do
        if ! kill -0 "$2" 2>/dev/null; then
            die "$3 exited at start-up; see $TMP"
        fi
        if "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "$3 did not listen on port $1"
}

UP_PORT=$(free_port)
STATUS_PORT=$(free_port)
PORT_A=$(free_port)
PORT_B=$(free_port)

# nginx: the provider
NGX="$TMP/nginx"
mkdir -p "$NGX/logs" "$NGX/tmp"
sed -e "s|@PREFIX@|$NGX|g" -e "s|@PORT@|$UP_PORT|g" \
    -e "s|@STATUS_PORT@|$STATUS_PORT|g" \
    "$BENCH/upstream-nginx.conf.in" > "$NGX/nginx.conf"
"$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" -t -q \
    || die "nginx configuration test failed"
"$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" \
    > "$NGX/logs/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$UP_PORT" "$NGINX_PID" nginx

# httpd: the same MPM/keepalive settings for both variants
USER_LINES=""
if [ "$(id -u)" = 0 ]; then
    USER_LINES=$'User www-data\nGroup www-data'
fi

write_httpd_conf() {   # root, port, variant-specific text
    local log=""
    if [ "$ACCESS_LOGS" = 1 ]; then
        log=$'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" bench\nCustomLog "'"$1"'/logs/access.log" bench'
    fi
    cat > "$1/httpd.conf" <<EOF
ServerRoot "$1"
DefaultRuntimeDir "$1/run"
PidFile "$1/run/httpd.pid"
Mutex file:$1/run default
Listen 127.0.0.1:$2
ServerName 127.0.0.1
ErrorLog "$1/logs/error.log"
LogLevel warn
$log
LoadModule mpm_event_module "$SYSMOD/mod_mpm_event.so"
LoadModule authz_core_module "$SYSMOD/mod_authz_core.so"
$USER_LINES
StartServers 1
ServerLimit 1
ThreadLimit $TPC
ThreadsPerChild $TPC
MaxRequestWorkers $TPC
MinSpareThreads 1
MaxSpareThreads $TPC
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
Timeout 30

$3
EOF
}

start_httpd() {   # root, what  -> sets STARTED_PID
    "$HTTPD" -d "$1" -f "$1/httpd.conf" -t >"$1/logs/configtest.log" 2>&1 \
        || { cat "$1/logs/configtest.log" >&2; die "$2: httpd -t failed"; }
    "$HTTPD" -d "$1" -f "$1/httpd.conf" -DFOREGROUND \
        > "$1/logs/stdout.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

ROOT_A="$TMP/a-proxy"
ROOT_B="$TMP/b-ark"
mkdir -p "$ROOT_A/logs" "$ROOT_A/run" "$ROOT_B/logs" "$ROOT_B/run"

write_httpd_conf "$ROOT_A" "$PORT_A" "\
# (a) plain reverse proxy; backend connections are pooled per process and
# reused (mod_proxy default: no proxy-nokeepalive, no disablereuse)
LoadModule proxy_module \"$SYSMOD/mod_proxy.so\"
LoadModule proxy_http_module \"$SYSMOD/mod_proxy_http.so\"
ProxyPass /v1/ http://127.0.0.1:$UP_PORT/v1/"

ark_log=""
[ "$ACCESS_LOGS" = 1 ] && ark_log="ArkAccessLog \"$ROOT_B/logs/ark-access.log\""
# --channels N: the alias gets N channels (providers bench1..N, all on the
# same nginx, different prices), routed by the default score strategy
ark_channels="ArkProvider bench openai http://127.0.0.1:$UP_PORT/v1 key=env:ARK_BENCH_PROVIDER_KEY
ArkModel gpt-4o-mini bench gpt-4o-mini-2024-07-18"
if [ "$CHANNELS" -gt 1 ]; then
    ark_channels=""
    for i in $(seq 1 "$CHANNELS"); do
        ark_channels="$ark_channels
ArkProvider bench$i openai http://127.0.0.1:$UP_PORT/v1 key=env:ARK_BENCH_PROVIDER_KEY
ArkModel gpt-4o-mini bench$i gpt-4o-mini-2024-07-18 price=$i/$((i * 4))"
    done
fi
write_httpd_conf "$ROOT_B" "$PORT_B" "\
# (b) mod_ark routing the model alias to the same upstream
LoadModule ark_module \"$MODULE\"
ArkKeysFile \"$ROOT_B/ark-keys\"
$ark_log
$ark_channels
<Location /v1>
    SetHandler ark-gateway
</Location>"

export ARK_BENCH_PROVIDER_KEY=sk-upstream-bench-0000   # what nginx is sent
KEY=$("$ARK_KEYS" create -c -f "$ROOT_B/ark-keys" -n bench -m '*' \
      2>"$ROOT_B/logs/ark-keys.log")
chmod 640 "$ROOT_B/ark-keys"
case "$KEY" in sk-ark-*) ;; *) die "ark-keys did not print a key" ;; esac
export ARK_BENCH_KEY="$KEY"
export ARK_BENCH_MODEL=gpt-4o-mini

start_httpd "$ROOT_A" "httpd (a)"; PID_A=$STARTED_PID
start_httpd "$ROOT_B" "httpd (b)"; PID_B=$STARTED_PID
wait_port "$PORT_A" "$PID_A" "httpd (a)"
wait_port "$PORT_B" "$PID_B" "httpd (b)"

# ----------------------------------------------------------------- helpers
# One request through each variant must give a real chat.completion.
smoke() {   # port, what
    "$PY" - "$1" "$2" <<'PY' || die "$2 does not answer correctly; see logs in $TMP"
import http.client, json, os, sys
port, what = int(sys.argv[1]), sys.argv[2]
body = json.dumps({"model": os.environ["ARK_BENCH_MODEL"],
                   "messages": [{"role": "user", "content": "hi"}]})
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("POST", "/v1/chat/completions", body=body,
          headers={"Authorization": "Bearer " + os.environ["ARK_BENCH_KEY"],
                   "Content-Type": "application/json"})
r = c.getresponse()
data = r.read()
ok = r.status == 200
try:
    ok = ok and json.loads(data)["object"] == "chat.completion"
except Exception:
    ok = False
if not ok:
    print("%s: HTTP %d %r" % (what, r.status, data[:300]), file=sys.stderr)
    sys.exit(1)
PY
}

# "accepts" counter of nginx stub_status (counts this probe's own connection)
nginx_accepts() {
    "$PY" - "$STATUS_PORT" <<'PY'
import sys, urllib.request
t = urllib.request.urlopen("http://127.0.0.1:%s/status" % sys.argv[1],
                           timeout=5).read().decode()
print(t.splitlines()[2].split()[0])
PY
}

# CPU seconds (user+system) used so far by a process and its children
cpu_ticks() {
    "$PY" "$SRC/bench/tree_ticks.py" "$@"
}

# whole-machine CPU ticks: "busy steal total" (all CPUs, from /proc/stat)
sys_ticks() {
    awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat
}

# CPU ticks of this shell's reaped children (wrk, perf)
child_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }

log_size() { stat -c %s "$NGX/logs/access.log" 2>/dev/null || echo 0; }

RESULTS="$TMP/results.tsv"
printf 'variant\tround\trequests\tduration_us\trps\tp50_us\tp90_us\tp99_us\tmax_us\tsock_errors\tnon2xx\tnew_upstream_conns\tdistinct_upstream_conns\tupstream_requests\tupstream_non200\thttpd_cpu_ticks\tnginx_cpu_ticks\tother_cpu_pct\tsteal_pct\twrk_cpu_ticks\n' > "$RESULTS"

run_wrk() {   # duration, port, output file
    # in the background + wait, so that a signal is handled at once
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1" --latency \
        -s "$BENCH/chat.lua" "http://127.0.0.1:$2/v1/chat/completions" \
        > "$3" &
    WRK_PID=$!
    wait "$WRK_PID"
    WRK_PID=""
}

measure() {   # variant(a|b), round
    local v=$1 round=$2 port pid other out a0 a1 s0 s1 c0 c1 n0 n1 o0 o1 \
          w0 w1 sys0 sys1 line
    if [ "$v" = a ]; then
        port=$PORT_A; pid=$PID_A; other=$PID_B
    else
        port=$PORT_B; pid=$PID_B; other=$PID_A
    fi
    out="$TMP/wrk-$v-$round.txt"
    sleep 0.5                       # let nginx flush its log buffer
    s0=$(log_size)
    a0=$(nginx_accepts)
    c0=$(cpu_ticks "$pid"); n0=$(cpu_ticks "$NGINX_PID")
    o0=$(cpu_ticks "$other")
    w0=$(child_ticks); sys0=$(sys_ticks)
    if [ -n "$PERF_DIR" ] && [ "$round" = 1 ]; then
        perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 \
            -o "$PERF_DIR/perf-$v.data" -p "$(pgrep -d, -P "$pid")" \
            > "$PERF_DIR/perf-$v.log" 2>&1 &
        PERF_PID=$!
        sleep 0.5
        run_wrk "$DURATION" "$port" "$out"
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" || true
        PERF_PID=""
    else
        run_wrk "$DURATION" "$port" "$out"
    fi
    sys1=$(sys_ticks); w1=$(child_ticks)
    c1=$(cpu_ticks "$pid"); n1=$(cpu_ticks "$NGINX_PID")
    o1=$(cpu_ticks "$other")
    a1=$(nginx_accepts)
    sleep 0.5
    s1=$(log_size)
    line=$(grep '^BENCH ' "$out") || die "no BENCH line in $out"
    "$PY" - "$v" "$round" "$line" "$((a1 - a0 - 1))" "$s0" "$s1" \
        "$NGX/logs/access.log" "$((c1 - c0))" "$((n1 - n0))" \
        "$(( (c1 - c0) + (n1 - n0) + (o1 - o0) + (w1 - w0) ))" \
        "$sys0" "$sys1" "$((w1 - w0))" >> "$RESULTS" <<'PY'
import sys
v, rnd, line, new_conns, s0, s1, log, cpu, ncpu, ours, sys0, sys1, wcpu = \
    sys.argv[1:]
busy, steal, total = (int(b) - int(a) for a, b in zip(sys0.split(),
                                                     sys1.split()))
other_pct = max(0.0, 100.0 * (busy - int(ours)) / max(total, 1))
steal_pct = 100.0 * steal / max(total, 1)
kv = dict(w.split("=", 1) for w in line.split()[1:])
with open(log, "rb") as f:
    f.seek(int(s0))
    lines = f.read(int(s1) - int(s0)).decode().split("\n")
conns, reqs, bad = set(), 0, 0
for l in lines:
    w = l.split()
    if len(w) != 3:
        continue
    conns.add(w[0])
    reqs += 1
    bad += w[2] != "200"
sock = sum(int(kv[k]) for k in ("errors_connect", "errors_read",
                                "errors_write", "errors_timeout"))
print("\t".join(str(x) for x in (
    v, rnd, kv["requests"], kv["duration_us"], kv["rps"], kv["p50_us"],
    kv["p90_us"], kv["p99_us"], kv["max_us"], sock, kv["non2xx"],
    new_conns, len(conns), reqs, bad, cpu, ncpu,
    "%.1f" % other_pct, "%.1f" % steal_pct, wcpu)))
PY
    tail -n 1 "$RESULTS" | awk -F'\t' -v c="$CONNECTIONS" '{
        printf "  %-5s round %s: %8.1f req/s  p50 %6.2f ms  p99 %6.2f ms  httpd %4.0f us/req  upstream conns %s new, %s used  other CPU %s%%\n",
               ($1 == "a" ? "proxy" : "ark"), $2, $5, $6 / 1000, $8 / 1000,
               $16 * 10000 / $3, $12, $13, $18 }'
}

# ------------------------------------------------------------------- run
echo "nginx :$UP_PORT   (a) mod_proxy :$PORT_A   (b) mod_ark :$PORT_B   temp $TMP"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds a,b alternating, warm-up $WARMUP each"
# smoke test + warm-up, one variant after the other: the upstream
# connections each gateway opens while it warms up are counted too
warm() {   # variant, port, what -> prints new upstream connections
    local a0 a1
    a0=$(nginx_accepts)
    smoke "$2" "$3"
    if [ "$WARMUP" != 0 ] && [ "$WARMUP" != 0s ]; then
        run_wrk "$WARMUP" "$2" "$TMP/warmup-$1.txt"
    fi
    a1=$(nginx_accepts)
    echo $((a1 - a0 - 1))
}
# (plain assignments: set -e then stops the script if warm() fails)
BENCH_WARM_CONNS_A=$(warm a "$PORT_A" "httpd (a) mod_proxy")
BENCH_WARM_CONNS_B=$(warm b "$PORT_B" "httpd (b) mod_ark")
export BENCH_WARM_CONNS_A BENCH_WARM_CONNS_B
echo "  upstream connections opened during smoke test + warm-up: (a) $BENCH_WARM_CONNS_A, (b) $BENCH_WARM_CONNS_B"
for ((r = 1; r <= ROUNDS; r++)); do
    measure a "$r"
    measure b "$r"
done

# ---------------------------------------------------------------- perf
if [ -n "$PERF_DIR" ]; then
    echo "perf: writing $PERF_DIR/summary.md (this takes a minute)"
    for v in a b; do
        perf script -i "$PERF_DIR/perf-$v.data" -F comm,tid,ip,sym,dso \
            > "$PERF_DIR/script-$v.txt" 2>/dev/null || true
        perf report -i "$PERF_DIR/perf-$v.data" --no-children --stdio \
            --sort dso,symbol -g none --percent-limit 0.3 \
            > "$PERF_DIR/report-$v-self.txt" 2>/dev/null || true
    done
    req_a=$(awk -F'\t' '$1 == "a" && $2 == 1 {print $3}' "$RESULTS")
    req_b=$(awk -F'\t' '$1 == "b" && $2 == 1 {print $3}' "$RESULTS")
    "$PY" "$BENCH/perf-summary.py" --freq 999 \
        "(a) mod_proxy=$PERF_DIR/script-a.txt:$req_a" \
        "(b) mod_ark=$PERF_DIR/script-b.txt:$req_b" \
        | tee "$PERF_DIR/summary.md"
    rm -f "$PERF_DIR/script-a.txt" "$PERF_DIR/script-b.txt"
fi

# ---------------------------------------------------------------- report
ver() { "$@" 2>&1 | head -n 1 || true; }
export BENCH_HTTPD_VERSION=$("$HTTPD" -v | sed -n 's/^Server version: //p')
export BENCH_NGINX_VERSION=$(ver "$NGINX" -v | sed 's|^nginx version: nginx/||')
export BENCH_WRK_VERSION=$(ver wrk -v | awk '{print $1, $2}')
export BENCH_CURL_VERSION=$(dpkg-query -W -f '${Version}' libcurl4 2>/dev/null || echo unknown)
export BENCH_JANSSON_VERSION=$(dpkg-query -W -f '${Version}' libjansson4 2>/dev/null || echo unknown)
BENCH_ARK_COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$SRC" status --porcelain -- mod_ark 2>/dev/null)" ]; then
    BENCH_ARK_COMMIT="$BENCH_ARK_COMMIT + local changes in mod_ark/"
fi
BENCH_ARK_COMMIT="$BENCH_ARK_COMMIT, mod_ark.so built $MODULE_BUILT UTC"
export BENCH_ARK_COMMIT
export BENCH_NPROC=$(nproc)
export BENCH_KERNEL=$(uname -r)
export BENCH_CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
export BENCH_COMMAND="$COMMAND"
export BENCH_SETTINGS="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s bench/chat.lua, $ROUNDS rounds alternating a,b, warm-up $WARMUP per variant; httpd event MPM ServerLimit 1, ThreadsPerChild $TPC, KeepAlive On, MaxKeepAliveRequests 0; access logs $([ "$ACCESS_LOGS" = 1 ] && echo on || echo off)"
export BENCH_CONNECTIONS=$CONNECTIONS

for root in "$ROOT_A" "$ROOT_B"; do
    if grep -E '\[[a-z_]*:(error|crit|alert|emerg)\]' "$root/logs/error.log" >/dev/null 2>&1; then
        echo "warning: errors in $root/logs/error.log:" >&2
        grep -E '\[[a-z_]*:(error|crit|alert|emerg)\]' "$root/logs/error.log" | head -n 5 >&2
        KEEP=1
    fi
done

"$PY" - "$RESULTS" "$WRITE_DOCS" "$DOC" <<'PY'
import datetime, os, re, statistics, sys

results, write_docs, doc = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
rows = []
with open(results) as f:
    head = f.readline().rstrip("\n").split("\t")
    for line in f:
        r = dict(zip(head, line.rstrip("\n").split("\t")))
        for k in head[1:]:
            r[k] = float(r[k])
        rows.append(r)
by = {v: [r for r in rows if r["variant"] == v] for v in "ab"}
med = lambda v, k: statistics.median(r[k] for r in by[v])
rps_a, rps_b = med("a", "rps"), med("b", "rps")
p50_a, p50_b = med("a", "p50_us") / 1000, med("b", "p50_us") / 1000
p99_a, p99_b = med("a", "p99_us") / 1000, med("b", "p99_us") / 1000
ratio = rps_b / rps_a
dp99 = p99_b - p99_a
ok_tp, ok_p99 = ratio >= 0.9, dp99 <= 0.5   # issue 7 (issue 2: 0.85 x, +1 ms)
invalid = [r for r in rows if r["non2xx"] or r["sock_errors"]
           or r["upstream_non200"]]

def cpu_us(v, k):   # CPU microseconds per request (clock ticks of 10 ms)
    tick = 1e6 / os.sysconf("SC_CLK_TCK")
    return statistics.median(r[k] * tick / r["requests"] for r in by[v])

def conn_summary(v):
    new = [int(r["new_upstream_conns"]) for r in by[v]]
    used = [int(r["distinct_upstream_conns"]) for r in by[v]]
    per = [r["upstream_requests"] / max(r["distinct_upstream_conns"], 1)
           for r in by[v]]
    return new, used, statistics.median(per)

n = len(by["a"])
conns = int(os.environ["BENCH_CONNECTIONS"])
new_a, used_a, per_a = conn_summary("a")
new_b, used_b, per_b = conn_summary("b")
fmt_list = lambda xs: ", ".join(str(x) for x in xs)

table = [
    "| median of %d runs, %d connections | (a) mod_proxy | (b) mod_ark "
    "| (b) vs (a) | target | |" % (n, conns),
    "|---|---:|---:|---:|---:|---|",
    "| throughput (req/s) | %.0f | %.0f | %.3f x | >= 0.9 x | %s |"
    % (rps_a, rps_b, ratio, "met" if ok_tp else "**missed**"),
    "| p50 latency (ms) | %.3f | %.3f | %+.3f ms | | |"
    % (p50_a, p50_b, p50_b - p50_a),
    "| p99 latency (ms) | %.3f | %.3f | %+.3f ms | <= +0.5 ms | %s |"
    % (p99_a, p99_b, dp99, "met" if ok_p99 else "**missed**"),
    "| httpd CPU per request (us) | %.0f | %.0f | %.2f x | | |"
    % (cpu_us("a", "httpd_cpu_ticks"), cpu_us("b", "httpd_cpu_ticks"),
       cpu_us("b", "httpd_cpu_ticks") / max(cpu_us("a", "httpd_cpu_ticks"), 1e-9)),
    "| nginx CPU per request (us) | %.0f | %.0f | | | |"
    % (cpu_us("a", "nginx_cpu_ticks"), cpu_us("b", "nginx_cpu_ticks")),
    "| wrk CPU per request (us) | %.0f | %.0f | | | |"
    % (cpu_us("a", "wrk_cpu_ticks"), cpu_us("b", "wrk_cpu_ticks")),
    "| upstream TCP connections opened in smoke test + warm-up | %s | %s "
    "| | | |" % (os.environ["BENCH_WARM_CONNS_A"],
                 os.environ["BENCH_WARM_CONNS_B"]),
    "| upstream TCP connections opened, per measured run | %s | %s | | | |"
    % (fmt_list(new_a), fmt_list(new_b)),
    "| upstream TCP connections used, per measured run | %s | %s | | | |"
    % (fmt_list(used_a), fmt_list(used_b)),
    "| requests per upstream connection (median) | %.0f | %.0f | | | |"
    % (per_a, per_b),
]
tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
runs = ["| run | req/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) "
        "| httpd CPU (us/req) | upstream conns opened / used "
        "| other CPU load | steal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    runs.append("| %s%d | %.0f | %.3f | %.3f | %.3f | %.1f | %.0f | %d / %d "
                "| %.0f%% | %.0f%% |" % (
        r["variant"], r["round"], r["rps"], r["p50_us"] / 1000,
        r["p90_us"] / 1000, r["p99_us"] / 1000, r["max_us"] / 1000,
        r["httpd_cpu_ticks"] * tick_us / r["requests"],
        r["new_upstream_conns"], r["distinct_upstream_conns"],
        r["other_cpu_pct"], r["steal_pct"]))

print()
print("\n".join(table))
print()
print("\n".join(runs))
print()
verdict = "target %s: throughput %.3f x (>= 0.9), p99 %+.3f ms (<= +0.5 ms)" % (
    "MET" if ok_tp and ok_p99 else "MISSED", ratio, dp99)
print(verdict)
noisy = [r for r in rows if r["other_cpu_pct"] > 10 or r["steal_pct"] > 5]
noise_note = ("%d of %d runs had more than 10%% of the CPU taken by other "
              "processes (or >5%% steal): repeat on a quiet machine"
              % (len(noisy), len(rows)) if noisy else
              "no run had more than 10%% of the CPU taken by other "
              "processes (highest %.0f%%)"
              % max(r["other_cpu_pct"] for r in rows))
print(noise_note, file=sys.stderr if noisy else sys.stdout)
if invalid:
    print("INVALID: some runs had errors, non-2xx answers or upstream "
          "errors; see the results", file=sys.stderr)
    sys.exit(1)

if write_docs:
    now = datetime.datetime.now(datetime.timezone.utc)
    e = os.environ
    section = "\n".join([
        "<!-- bench:results:begin (written by bench/run-gateway-bench.sh "
        "--write-docs) -->",
        "",
        "Measured %s UTC with:" % now.strftime("%Y-%m-%d %H:%M"),
        "",
        "```sh",
        e["BENCH_COMMAND"],
        "```",
        "",
        "- machine: %s CPUs (%s), Linux %s; wrk, httpd and nginx share "
        "them" % (e["BENCH_NPROC"], e["BENCH_CPU"] or "unknown CPU",
                  e["BENCH_KERNEL"]),
        "- versions: %s; nginx %s; %s; libcurl %s; jansson %s; mod_ark %s"
        % (e["BENCH_HTTPD_VERSION"], e["BENCH_NGINX_VERSION"],
           e["BENCH_WRK_VERSION"], e["BENCH_CURL_VERSION"],
           e["BENCH_JANSSON_VERSION"], e["BENCH_ARK_COMMIT"]),
        "- settings: " + e["BENCH_SETTINGS"],
        "- CPU busy with other work just before the run: %s%%"
        % e["BENCH_BUSY_BEFORE"],
        "",
        "\n".join(table),
        "",
        "Every run:",
        "",
        "\n".join(runs),
        "",
        "Result: " + verdict + ". Noise check: " + noise_note + ".",
        "",
        "<!-- bench:results:end -->",
    ])
    try:
        with open(doc) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Performance\n\n## Results\n\n"
    pat = re.compile(r"<!-- bench:results:begin.*?<!-- bench:results:end -->",
                     re.S)
    if pat.search(text):
        text = pat.sub(lambda m: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(doc, "w") as f:
        f.write(text)
    print("results written to " + os.path.relpath(doc))
PY
