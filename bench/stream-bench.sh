#!/bin/bash
# Streaming (and time-to-first-token) benchmark: gateways side by side.
#
# Starts one upstream ("the provider") and the gateways named by
# --variants, then runs bench/ttfb.c (a small C load client: N keep-alive
# connections, time to the first "data:" event and to the end of the
# answer, percentiles) against them alternately for --rounds rounds. The
# first variant is the baseline the others are compared with.
#
#   proxy    httpd, mod_proxy + mod_proxy_http, ProxyPass /v1/ -> upstream
#   ark      httpd, mod_ark (ArkProvider/ArkModel -> upstream, no cache)
#   portkey  the Portkey AI gateway (npm @portkey-ai/gateway, pinned,
#            installed into a cache directory at first use; node), told
#            to use the same upstream by x-portkey-provider: openai and
#            x-portkey-custom-host
#
# Upstreams:
#   streaming (default)  bench/sse_upstream.c: a realistic OpenAI
#                        chat.completion.chunk sequence (role event, one
#                        event per token, finish, usage when asked,
#                        [DONE]), chunked; --gap-us G > 0 sends the first
#                        event at once and each later one G us after the
#                        previous (a model generating tokens), 0 sends the
#                        whole stream in one write ("burst": the cheapest
#                        stream, CPU-bound, like the non-streaming bench)
#   --json               nginx (bench/upstream-nginx.conf.in), the same
#                        fixed chat.completion as bench/run-gateway-bench.sh
#
# Every variant must first answer one request with a real chat.completion
# (or a stream of chat.completion.chunk events ending in [DONE]), and the
# upstream's own request counter must show that it got the requests;
# runs with any error, non-2xx or incomplete answer fail the script.
#
# Usage: bench/stream-bench.sh [--variants proxy,ark] [--json]
#            [--gap-us 0] [--events 24] [--rounds 3] [--duration 10]
#            [--connections 32] [--warmup 3] [--threads-per-child 64]
#            [--portkey-version 1.15.2] [--portkey-port N]
#            [--label NAME] [--write-docs] [--keep]
#
# --write-docs replaces the part of docs/performance.md between
# "<!-- bench:NAME:begin" and "<!-- bench:NAME:end -->", NAME from --label
# (default: stream-burst, stream-paced, json, with the variants appended
# when they are not proxy,ark, e.g. json-portkey-ark).
#
# Needs: cc, nginx (nginx-light) for --json, apache2 + apache2-dev, python3,
# node + npm for portkey (Debian packages nodejs, npm), a built tree (make).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$SRC/bench"
BUILD=${ARK_BUILD_DIR:-$SRC}
HTTPD=${ARK_HTTPD:-/usr/sbin/apache2}
NGINX=${NGINX:-nginx}
PY=${PYTHON:-/usr/bin/python3}
CC=${CC:-cc}
MODULE="$BUILD/.libs/mod_ark.so"
ARK_KEYS="$BUILD/ark-keys"
DOC="$SRC/docs/performance.md"
CACHE=${ARK_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ark-bench}

VARIANTS=proxy,ark
JSON=0
GAP_US=0
EVENTS=24
ROUNDS=3
DURATION=10
CONNECTIONS=32
WARMUP=3
TPC=64
PORTKEY_VERSION=1.15.2
PORTKEY_PORT=""
LABEL=""
WRITE_DOCS=0
KEEP=0
COMMAND="bench/stream-bench.sh${*:+ $*}"

die() { echo "stream-bench: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
    --variants)          VARIANTS=${2:?}; shift 2 ;;
    --json)              JSON=1; shift ;;
    --gap-us)            GAP_US=${2:?}; shift 2 ;;
    --events)            EVENTS=${2:?}; shift 2 ;;
    --rounds)            ROUNDS=${2:?}; shift 2 ;;
    --duration)          DURATION=${2%s}; shift 2 ;;
    --connections|-c)    CONNECTIONS=${2:?}; shift 2 ;;
    --warmup)            WARMUP=${2%s}; shift 2 ;;
    --threads-per-child) TPC=${2:?}; shift 2 ;;
    --portkey-version)   PORTKEY_VERSION=${2:?}; shift 2 ;;
    --portkey-port)      PORTKEY_PORT=${2:?}; shift 2 ;;
    --label)             LABEL=${2:?}; shift 2 ;;
    --write-docs)        WRITE_DOCS=1; shift ;;
    --keep)              KEEP=1; shift ;;
    -h|--help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' \
            | sed 's/^# \{0,1\}//'
        exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
    esac
done
for n in ROUNDS DURATION CONNECTIONS TPC EVENTS; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "${n,,} must be a positive integer"
done
[[ "$GAP_US" =~ ^[0-9]+$ ]] || die "--gap-us must be a number"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "--warmup must be a number of seconds"
IFS=, read -r -a VLIST <<< "$VARIANTS"
[ "${#VLIST[@]}" -ge 2 ] || die "--variants needs at least two, e.g. proxy,ark"
for v in "${VLIST[@]}"; do
    case "$v" in proxy|ark|portkey) ;; *) die "unknown variant '$v'" ;; esac
done
if [ -z "$LABEL" ]; then
    if [ "$JSON" = 1 ]; then LABEL=json
    elif [ "$GAP_US" = 0 ]; then LABEL=stream-burst
    else LABEL=stream-paced; fi
    [ "$VARIANTS" = proxy,ark ] || LABEL="$LABEL-${VARIANTS//,/-}"
fi
[[ "$LABEL" =~ ^[a-z0-9-]+$ ]] || die "--label: lower-case letters, digits, -"

has() { [[ ",$VARIANTS," == *",$1,"* ]]; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: apt-get install $2"; }
need "$CC" gcc
need "$PY" python3
if has proxy || has ark; then
    need "$HTTPD" apache2
    need apxs apache2-dev
    SYSMOD=$(apxs -q LIBEXECDIR)
fi
[ "$JSON" = 1 ] && need "$NGINX" nginx-light
if has ark; then
    [ -f "$MODULE" ] || die "$MODULE missing: build first (make)"
    [ -x "$ARK_KEYS" ] || die "$ARK_KEYS missing: build first (make)"
fi
if has portkey; then
    need node nodejs
    need npm npm
    PORTKEY_DIR="$CACHE/portkey-$PORTKEY_VERSION"
    PORTKEY_JS="$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js"
    if [ ! -f "$PORTKEY_JS" ]; then
        echo "installing @portkey-ai/gateway@$PORTKEY_VERSION into $PORTKEY_DIR"
        mkdir -p "$PORTKEY_DIR"
        npm install --prefix "$PORTKEY_DIR" --no-audit --no-fund \
            --loglevel=error "@portkey-ai/gateway@$PORTKEY_VERSION" \
            > "$PORTKEY_DIR/npm-install.log" 2>&1 \
            || die "npm install failed: see $PORTKEY_DIR/npm-install.log"
        [ -f "$PORTKEY_JS" ] || die "no $PORTKEY_JS after npm install"
    fi
fi

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
[ "$BUSY_BEFORE" -gt 15 ] && echo "warning: the machine is not idle; figures will be noisy" >&2

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d /tmp/ark-stream-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
CLIENT_PID=""

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    [ -n "$CLIENT_PID" ] && { kill -TERM "$CLIENT_PID" 2>/dev/null || true; wait "$CLIENT_PID" 2>/dev/null || true; }
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
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
        echo "stream-bench: files kept in $TMP" >&2
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
    for _ in $(seq 150); do
        kill -0 "$2" 2>/dev/null || die "$3 exited at start-up; see $TMP"
        if "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "$3 did not listen on port $1"
}

# the two C tools, built for this run
"$CC" -O2 -std=gnu11 -Wall -Wextra -Werror -o "$TMP/ttfb" "$BENCH/ttfb.c" \
    || die "building bench/ttfb.c failed"
"$CC" -O2 -std=gnu11 -Wall -Wextra -Werror -o "$TMP/sse_upstream" \
    "$BENCH/sse_upstream.c" || die "building bench/sse_upstream.c failed"

UP_PORT=$(free_port)
if [ "$JSON" = 1 ]; then
    STATUS_PORT=$(free_port)
    NGX="$TMP/nginx"
    mkdir -p "$NGX/logs" "$NGX/tmp"
    sed -e "s|@PREFIX@|$NGX|g" -e "s|@PORT@|$UP_PORT|g" \
        -e "s|@STATUS_PORT@|$STATUS_PORT|g" \
        "$BENCH/upstream-nginx.conf.in" > "$NGX/nginx.conf"
    "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" \
        > "$NGX/logs/stdout.log" 2>&1 &
    UP_PID=$!
    UP_WHAT="nginx (fixed chat.completion)"
    PROBE_COST=1    # stub_status counts the probe's own request
else
    "$TMP/sse_upstream" -p "$UP_PORT" -g "$GAP_US" -n "$EVENTS" \
        > "$TMP/upstream.log" 2>&1 &
    UP_PID=$!
    UP_WHAT="bench/sse_upstream.c ($EVENTS content events, gap $GAP_US us)"
    PROBE_COST=0    # GET /stats is not counted
fi
PIDS+=("$UP_PID")
wait_port "$UP_PORT" "$UP_PID" upstream

# requests the upstream has answered so far
upstream_requests() {
    if [ "$JSON" = 1 ]; then
        # stub_status: 3rd line "accepts handled requests" (counts probes)
        "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/status" % sys.argv[1], timeout=5).read().decode().splitlines()[2].split()[2])' "$STATUS_PORT"
    else
        "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/stats" % sys.argv[1], timeout=5).read().decode().split()[1])' "$UP_PORT"
    fi
}

USER_LINES=""
[ "$(id -u)" = 0 ] && USER_LINES=$'User www-data\nGroup www-data'

write_httpd_conf() {   # root, port, variant-specific text
    cat > "$1/httpd.conf" <<EOF
ServerRoot "$1"
DefaultRuntimeDir "$1/run"
PidFile "$1/run/httpd.pid"
Mutex file:$1/run default
Listen 127.0.0.1:$2
ServerName 127.0.0.1
ErrorLog "$1/logs/error.log"
LogLevel warn
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

start_httpd() {   # root -> STARTED_PID
    "$HTTPD" -d "$1" -f "$1/httpd.conf" -t >"$1/logs/configtest.log" 2>&1 \
        || { cat "$1/logs/configtest.log" >&2; die "httpd -t failed in $1"; }
    "$HTTPD" -d "$1" -f "$1/httpd.conf" -DFOREGROUND > "$1/logs/stdout.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

export ARK_BENCH_PROVIDER_KEY=sk-upstream-bench-0000   # what the upstream is sent
declare -A PORT PID HDRS WHAT
for v in "${VLIST[@]}"; do
    PORT[$v]=$(free_port)
    case "$v" in
    proxy)
        root="$TMP/proxy"; mkdir -p "$root/logs" "$root/run"
        write_httpd_conf "$root" "${PORT[$v]}" "\
LoadModule proxy_module \"$SYSMOD/mod_proxy.so\"
LoadModule proxy_http_module \"$SYSMOD/mod_proxy_http.so\"
ProxyPass /v1/ http://127.0.0.1:$UP_PORT/v1/"
        start_httpd "$root"; PID[$v]=$STARTED_PID
        HDRS[$v]="Authorization: Bearer $ARK_BENCH_PROVIDER_KEY"
        WHAT[$v]="mod_proxy"
        ;;
    ark)
        root="$TMP/ark"; mkdir -p "$root/logs" "$root/run"
        write_httpd_conf "$root" "${PORT[$v]}" "\
LoadModule ark_module \"$MODULE\"
ArkKeysFile \"$root/ark-keys\"
ArkProvider bench openai http://127.0.0.1:$UP_PORT/v1 key=env:ARK_BENCH_PROVIDER_KEY
ArkModel gpt-4o-mini bench gpt-4o-mini-2024-07-18
<Location /v1>
    SetHandler ark-gateway
</Location>"
        KEY=$("$ARK_KEYS" create -c -f "$root/ark-keys" -n bench -m '*' 2>"$root/logs/ark-keys.log")
        chmod 640 "$root/ark-keys"
        case "$KEY" in sk-ark-*) ;; *) die "ark-keys did not print a key" ;; esac
        start_httpd "$root"; PID[$v]=$STARTED_PID
        HDRS[$v]="Authorization: Bearer $KEY"
        WHAT[$v]="mod_ark"
        ;;
    portkey)
        [ -n "$PORTKEY_PORT" ] && PORT[$v]=$PORTKEY_PORT
        mkdir -p "$TMP/portkey"
        # the gateway listens on all interfaces by default: the preload
        # binds it to 127.0.0.1
        (cd "$TMP/portkey" && exec node --import "file://$BENCH/portkey-loopback.mjs" \
            "$PORTKEY_JS" --port="${PORT[$v]}" --headless \
            > "$TMP/portkey/stdout.log" 2>&1) &
        PID[$v]=$!
        PIDS+=("${PID[$v]}")
        HDRS[$v]="Authorization: Bearer $ARK_BENCH_PROVIDER_KEY
x-portkey-provider: openai
x-portkey-custom-host: http://127.0.0.1:$UP_PORT/v1"
        WHAT[$v]="Portkey $PORTKEY_VERSION"
        ;;
    esac
done
for v in "${VLIST[@]}"; do
    wait_port "${PORT[$v]}" "${PID[$v]}" "$v"
done

if [ "$JSON" = 1 ]; then
    BODY='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant. Answer in one or two sentences."},{"role":"user","content":"What is the capital of France, and why has it been important historically?"}],"temperature":0.2,"max_tokens":128}'
    MODEFLAG=--json
else
    BODY='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant. Answer in one or two sentences."},{"role":"user","content":"What is the capital of France, and why has it been important historically?"}],"temperature":0.2,"max_tokens":128,"stream":true}'
    MODEFLAG=""
fi

# One request through the variant: a real answer, and the upstream saw it.
smoke() {   # variant
    local v=$1 u0 u1
    u0=$(upstream_requests)
    HDRS_TEXT="${HDRS[$v]}" "$PY" - "${PORT[$v]}" "$v" "$JSON" "$BODY" <<'PY' || die "$v does not answer correctly; see $TMP"
import http.client, json, os, sys
port, what, js, body = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4]
h = {"Content-Type": "application/json"}
for line in os.environ["HDRS_TEXT"].splitlines():
    k, v = line.split(":", 1)
    h[k.strip()] = v.strip()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
c.request("POST", "/v1/chat/completions", body=body, headers=h)
r = c.getresponse()
data = r.read().decode("utf-8", "replace")
ok = r.status == 200
try:
    if js:
        ok = ok and json.loads(data)["object"] == "chat.completion"
    else:
        ok = ok and "text/event-stream" in r.getheader("Content-Type", "")
        ev = [l[5:].strip() for l in data.splitlines() if l.startswith("data:")]
        ok = ok and ev[-1] == "[DONE]" and len(ev) > 3
        chunks = [json.loads(e) for e in ev[:-1]]
        ok = ok and all(x["object"] == "chat.completion.chunk" for x in chunks)
        text = "".join((ch.get("delta") or {}).get("content") or ""
                       for x in chunks for ch in x.get("choices", []))
        ok = ok and text.startswith("Paris is the capital")
except Exception as e:
    print("%s: %s" % (what, e), file=sys.stderr)
    ok = False
if not ok:
    print("%s: HTTP %d %r" % (what, r.status, data[:400]), file=sys.stderr)
    sys.exit(1)
PY
    u1=$(upstream_requests)
    [ $((u1 - u0 - PROBE_COST)) -ge 1 ] || die "$v answered, but the upstream got no request"
}

cpu_ticks() {   # pid... -> CPU ticks of them and their descendants
    "$PY" "$SRC/bench/tree_ticks.py" "$@"
}
sys_ticks() { awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
child_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }

run_client() {   # variant, seconds, output
    local args=() line
    while IFS= read -r line; do
        args+=(-H "$line")
    done <<< "${HDRS[$1]}"
    "$TMP/ttfb" -u "http://127.0.0.1:${PORT[$1]}/v1/chat/completions" \
        -c "$CONNECTIONS" -d "$2" -b "$BODY" "${args[@]}" $MODEFLAG > "$3" &
    CLIENT_PID=$!
    wait "$CLIENT_PID"
    CLIENT_PID=""
}

RESULTS="$TMP/results.tsv"
printf 'variant\tround\trequests\trps\tfirst_p50_us\tfirst_p99_us\tp50_us\tp90_us\tp99_us\tmax_us\tevents\terrors\tupstream_requests\tgw_cpu_ticks\tup_cpu_ticks\tclient_cpu_ticks\tother_cpu_pct\tsteal_pct\n' > "$RESULTS"

measure() {   # variant, round
    local v=$1 rnd=$2 out="$TMP/run-$1-$2.txt" u0 u1 g0 g1 p0 p1 o0 o1 w0 w1 s0 s1 others=()
    for x in "${VLIST[@]}"; do [ "$x" = "$v" ] || others+=("${PID[$x]}"); done
    u0=$(upstream_requests)
    g0=$(cpu_ticks "${PID[$v]}"); p0=$(cpu_ticks "$UP_PID"); o0=$(cpu_ticks "${others[@]}")
    w0=$(child_ticks); s0=$(sys_ticks)
    run_client "$v" "$DURATION" "$out"
    s1=$(sys_ticks); w1=$(child_ticks)
    g1=$(cpu_ticks "${PID[$v]}"); p1=$(cpu_ticks "$UP_PID"); o1=$(cpu_ticks "${others[@]}")
    u1=$(upstream_requests)
    "$PY" - "$v" "$rnd" "$(grep '^BENCH ' "$out")" "$((u1 - u0 - PROBE_COST))" \
        "$((g1 - g0))" "$((p1 - p0))" "$((w1 - w0))" \
        "$(( (g1 - g0) + (p1 - p0) + (o1 - o0) + (w1 - w0) ))" "$s0" "$s1" \
        >> "$RESULTS" <<'PY'
import sys
v, rnd, line, ureq, g, p, w, ours, s0, s1 = sys.argv[1:]
busy, steal, total = (int(b) - int(a) for a, b in zip(s0.split(), s1.split()))
other = max(0.0, 100.0 * (busy - int(ours)) / max(total, 1))
kv = dict(x.split("=", 1) for x in line.split()[1:])
err = sum(int(kv[k]) for k in ("errors_connect", "errors_read", "non2xx", "invalid"))
print("\t".join(str(x) for x in (
    v, rnd, kv["requests"], kv["rps"], kv["first_p50_us"], kv["first_p99_us"],
    kv["p50_us"], kv["p90_us"], kv["p99_us"], kv["max_us"],
    kv["events_per_stream"], err, ureq, g, p, w,
    "%.1f" % other, "%.1f" % (100.0 * steal / max(total, 1)))))
PY
    tail -n 1 "$RESULTS" | awk -F'\t' -v tick="$(getconf CLK_TCK)" '{
        printf "  %-8s round %s: %8.1f req/s  first p50 %6.2f p99 %6.2f ms  whole p50 %6.2f p99 %6.2f ms  gateway %4.0f us/req  errors %s  other CPU %s%%\n",
               $1, $2, $4, $5 / 1000, $6 / 1000, $7 / 1000, $9 / 1000,
               $14 * 1e6 / tick / ($3 > 0 ? $3 : 1), $12, $17 }'
}

MODE_TEXT=$([ "$JSON" = 1 ] && echo "non-streaming" || echo "streaming")
echo "upstream :$UP_PORT $UP_WHAT; $MODE_TEXT; temp $TMP"
for v in "${VLIST[@]}"; do
    echo "  $v: ${WHAT[$v]} on :${PORT[$v]}"
done
echo "ttfb -c$CONNECTIONS -d$DURATION, $ROUNDS rounds alternating ${VARIANTS}, warm-up ${WARMUP}s each (portkey: at least 10s)"
for v in "${VLIST[@]}"; do
    smoke "$v"
    w=$WARMUP
    # node compiles the gateway's hot code during its first seconds under
    # load (throughput doubles over the first 10 s): give it that time
    [ "$v" = portkey ] && [ "$w" -lt 10 ] && w=10
    [ "$w" = 0 ] || run_client "$v" "$w" "$TMP/warmup-$v.txt"
done
for ((r = 1; r <= ROUNDS; r++)); do
    for v in "${VLIST[@]}"; do
        measure "$v" "$r"
    done
done

for v in proxy ark; do
    has "$v" || continue
    if grep -E '\[[a-z_]*:(error|crit|alert|emerg)\]' "$TMP/$v/logs/error.log" >/dev/null 2>&1; then
        echo "warning: errors in $TMP/$v/logs/error.log:" >&2
        grep -E '\[[a-z_]*:(error|crit|alert|emerg)\]' "$TMP/$v/logs/error.log" | head -n 5 >&2
        KEEP=1
    fi
done

ver() { "$@" 2>&1 | head -n 1 || true; }
BENCH_VERSIONS=""
if has proxy || has ark; then
    BENCH_VERSIONS="$("$HTTPD" -v | sed -n 's/^Server version: //p')"
fi
if has ark; then
    c=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -n "$(git -C "$SRC" status --porcelain -- mod_ark 2>/dev/null)" ] && c="$c + local changes"
    BENCH_VERSIONS="$BENCH_VERSIONS; mod_ark $c (built $(date -u -r "$MODULE" '+%Y-%m-%d %H:%M') UTC)"
fi
has portkey && BENCH_VERSIONS="$BENCH_VERSIONS; @portkey-ai/gateway $PORTKEY_VERSION on node $(node --version)"
[ "$JSON" = 1 ] && BENCH_VERSIONS="$BENCH_VERSIONS; nginx $(ver "$NGINX" -v | sed 's|^nginx version: nginx/||')"
export BENCH_VERSIONS BENCH_COMMAND="$COMMAND" BENCH_LABEL="$LABEL" \
    BENCH_BUSY_BEFORE="$BUSY_BEFORE" BENCH_UPSTREAM="$UP_WHAT" \
    BENCH_MODE="$MODE_TEXT" BENCH_CONNECTIONS="$CONNECTIONS" \
    BENCH_SETTINGS="ttfb -c$CONNECTIONS -d$DURATION, $ROUNDS rounds alternating $VARIANTS, warm-up ${WARMUP}s per variant (Portkey at least 10s); httpd event MPM ServerLimit 1, ThreadsPerChild $TPC, KeepAlive On; access logs off" \
    BENCH_MACHINE="$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), Linux $(uname -r)"
WHATS=""
for v in "${VLIST[@]}"; do WHATS="$WHATS$v=${WHAT[$v]};"; done
export BENCH_WHATS="$WHATS"

"$PY" - "$RESULTS" "$WRITE_DOCS" "$DOC" "$VARIANTS" "$JSON" <<'PY'
import datetime, os, re, statistics, sys

results, write_docs, doc, variants, js = sys.argv[1:]
write_docs, js = write_docs == "1", js == "1"
vl = variants.split(",")
what = dict(x.split("=", 1) for x in os.environ["BENCH_WHATS"].split(";") if x)
rows = []
with open(results) as f:
    head = f.readline().rstrip("\n").split("\t")
    for line in f:
        r = dict(zip(head, line.rstrip("\n").split("\t")))
        for k in head[1:]:
            r[k] = float(r[k])
        rows.append(r)
tick = 1e6 / os.sysconf("SC_CLK_TCK")
by = {v: [r for r in rows if r["variant"] == v] for v in vl}
med = lambda v, k: statistics.median(r[k] for r in by[v])
cpu = lambda v, k: statistics.median(r[k] * tick / max(r["requests"], 1) for r in by[v])
base = vl[0]
first_name = "first token" if not js else "first body byte"
whole_name = "whole stream" if not js else "whole answer"

def verdict(v):
    """Targets: against mod_proxy (issue 7) or, against another gateway,
    being ahead of it."""
    ratio = med(v, "rps") / med(base, "rps")
    d1 = (med(v, "first_p99_us") - med(base, "first_p99_us")) / 1000
    d2 = (med(v, "p99_us") - med(base, "p99_us")) / 1000
    if base == "proxy":
        checks = [("throughput", ratio >= 0.9, ">= 0.9 x"),
                  ("p99 " + first_name, d1 <= 0.5, "<= +0.5 ms"),
                  ("p99 " + whole_name, d2 <= 0.5, "<= +0.5 ms")]
    else:
        checks = [("throughput", ratio > 1.0, "> 1 x (ahead)"),
                  ("p99 " + whole_name, d2 < 0, "< 0 (ahead)")]
    return ratio, d1, d2, checks

table = []
cols = " | ".join("%s" % what[v] for v in vl)
for v in vl[1:]:
    ratio, d1, d2, checks = verdict(v)
    ok = {c[0]: (c[1], c[2]) for c in checks}
    def mark(name):
        if name not in ok:
            return " | | |"
        return " | %s | %s |" % (ok[name][1], "met" if ok[name][0] else "**missed**")
    table += [
        "| median of %d runs, %d connections | (a) %s | (b) %s | (b) vs (a) | target | |"
        % (len(by[base]), int(os.environ["BENCH_CONNECTIONS"]), what[base], what[v]),
        "|---|---:|---:|---:|---:|---|",
        "| throughput (answers/s) | %.0f | %.0f | %.3f x%s"
        % (med(base, "rps"), med(v, "rps"), ratio, mark("throughput")),
        "| p50 %s (ms) | %.3f | %.3f | %+.3f ms | | |"
        % (first_name, med(base, "first_p50_us") / 1000,
           med(v, "first_p50_us") / 1000,
           (med(v, "first_p50_us") - med(base, "first_p50_us")) / 1000),
        "| p99 %s (ms) | %.3f | %.3f | %+.3f ms%s"
        % (first_name, med(base, "first_p99_us") / 1000,
           med(v, "first_p99_us") / 1000, d1, mark("p99 " + first_name)),
        "| p50 %s (ms) | %.3f | %.3f | %+.3f ms | | |"
        % (whole_name, med(base, "p50_us") / 1000, med(v, "p50_us") / 1000,
           (med(v, "p50_us") - med(base, "p50_us")) / 1000),
        "| p99 %s (ms) | %.3f | %.3f | %+.3f ms%s"
        % (whole_name, med(base, "p99_us") / 1000, med(v, "p99_us") / 1000,
           d2, mark("p99 " + whole_name)),
        "| gateway CPU per answer (us) | %.0f | %.0f | %.2f x | | |"
        % (cpu(base, "gw_cpu_ticks"), cpu(v, "gw_cpu_ticks"),
           cpu(v, "gw_cpu_ticks") / max(cpu(base, "gw_cpu_ticks"), 1e-9)),
        "| upstream CPU per answer (us) | %.0f | %.0f | | | |"
        % (cpu(base, "up_cpu_ticks"), cpu(v, "up_cpu_ticks")),
    ]
    if not js:
        table.append("| events per stream received | %.1f | %.1f | | | |"
                     % (med(base, "events"), med(v, "events")))
    table.append("")

runs = ["| run | answers/s | first p50 (ms) | first p99 (ms) | whole p50 (ms) "
        "| whole p99 (ms) | max (ms) | gateway CPU (us/answer) "
        "| upstream requests / answers | other CPU load | steal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    runs.append("| %s %d | %.0f | %.3f | %.3f | %.3f | %.3f | %.1f | %.0f | %d / %d | %.0f%% | %.0f%% |" % (
        r["variant"], r["round"], r["rps"], r["first_p50_us"] / 1000,
        r["first_p99_us"] / 1000, r["p50_us"] / 1000, r["p99_us"] / 1000,
        r["max_us"] / 1000, r["gw_cpu_ticks"] * tick / max(r["requests"], 1),
        r["upstream_requests"], r["requests"], r["other_cpu_pct"],
        r["steal_pct"]))

invalid = [r for r in rows if r["errors"] or r["requests"] == 0
           or r["upstream_requests"] < r["requests"]]
verdicts = []
for v in vl[1:]:
    ratio, d1, d2, checks = verdict(v)
    verdicts.append("%s vs %s: %s: throughput %.3f x, p99 %s %+.3f ms, p99 %s %+.3f ms"
                    % (what[v], what[base],
                       "target MET" if all(c[1] for c in checks) else "target MISSED",
                       ratio, first_name, d1, whole_name, d2))
noisy = [r for r in rows if r["other_cpu_pct"] > 10 or r["steal_pct"] > 5]
noise = ("%d of %d runs had more than 10%% of the CPU taken by other processes "
         "(or >5%% steal; highest %.0f%%): figures are noisy, repeat on a quiet machine"
         % (len(noisy), len(rows), max(r["other_cpu_pct"] for r in rows))
         if noisy else "no run had more than 10%% of the CPU taken by other "
         "processes (highest %.0f%%)" % max(r["other_cpu_pct"] for r in rows))
print()
print("\n".join(table))
print("\n".join(runs))
print()
for v in verdicts:
    print(v)
print(noise)
if invalid:
    print("INVALID: runs with errors, incomplete answers, or answers the "
          "upstream did not see; see the table", file=sys.stderr)
    sys.exit(1)
if write_docs:
    label = os.environ["BENCH_LABEL"]
    now = datetime.datetime.now(datetime.timezone.utc)
    e = os.environ
    section = "\n".join([
        "<!-- bench:%s:begin (written by bench/stream-bench.sh --write-docs) -->" % label,
        "",
        "Measured %s UTC, %s, upstream %s:" % (now.strftime("%Y-%m-%d %H:%M"),
                                              e["BENCH_MODE"], e["BENCH_UPSTREAM"]),
        "",
        "```sh", e["BENCH_COMMAND"], "```",
        "",
        "- machine: %s; client, gateways and upstream share it" % e["BENCH_MACHINE"],
        "- versions: %s" % e["BENCH_VERSIONS"].lstrip("; "),
        "- settings: %s" % e["BENCH_SETTINGS"],
        "- CPU busy with other work just before the run: %s%%" % e["BENCH_BUSY_BEFORE"],
        "",
        "\n".join(table),
        "Every run:",
        "",
        "\n".join(runs),
        "",
        "Result: " + "; ".join(verdicts) + ". Noise check: " + noise + ".",
        "",
        "<!-- bench:%s:end -->" % label,
    ])
    with open(doc) as f:
        text = f.read()
    pat = re.compile(r"<!-- bench:%s:begin.*?<!-- bench:%s:end -->"
                     % (re.escape(label), re.escape(label)), re.S)
    if pat.search(text):
        text = pat.sub(lambda m: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(doc, "w") as f:
        f.write(text)
    print("results written to %s (section %s)" % (os.path.relpath(doc), label))
PY
