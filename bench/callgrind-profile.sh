#!/bin/bash
# User-space instructions per request of the gateway's hot paths, with
# callgrind: one httpd (-X, a single process) under valgrind, counting
# only inside ap_process_async_request (one request's processing), driven
# by bench/ttfb.c with a few connections.
#
#   json    non-streaming chat completion, nginx-like fixed answer
#   stream  streamed chat completion (bench/sse_upstream.c, whole stream
#           in one upstream write: 27 events, or 28 with the usage chunk
#           mod_ark asks for)
#
# For each mode it profiles mod_proxy and mod_ark and prints instructions
# per request for the whole request and for mod_ark's main functions
# (inclusive), and per relayed event for the streaming ones. Instruction
# counts do not depend on the machine's load, so this runs fine on a busy
# machine, unlike the throughput benchmarks.
#
# Usage: bench/callgrind-profile.sh [--modes json,stream] [--seconds 20]
#            [--connections 4] [--out DIR] [--build DIR] [--write-docs]
# --build DIR  profile the mod_ark.so of another built tree (e.g. an older
#              commit, for before/after figures); default: this tree
# --write-docs replaces the bench:callgrind section of docs/performance.md
# --summary DIR  only print (and --write-docs) the tables of an earlier
#              run's --out DIR
#
# Needs: valgrind, apache2 + apache2-dev, cc, python3, a built tree.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$SRC/bench"
BUILD=${ARK_BUILD_DIR:-$SRC}
HTTPD=${ARK_HTTPD:-/usr/sbin/apache2}
PY=${PYTHON:-/usr/bin/python3}
CC=${CC:-cc}
MODES=json,stream
SECONDS_RUN=20
CONNS=4
OUT=""
WRITE_DOCS=0
SUMMARY_ONLY=0
COMMAND="bench/callgrind-profile.sh${*:+ $*}"

while [ $# -gt 0 ]; do
    case "$1" in
    --modes)       MODES=${2:?}; shift 2 ;;
    --seconds)     SECONDS_RUN=${2:?}; shift 2 ;;
    --connections) CONNS=${2:?}; shift 2 ;;
    --out)         OUT=${2:?}; shift 2 ;;
    --build)       BUILD=$(cd "${2:?}" && pwd); shift 2 ;;
    --write-docs)  WRITE_DOCS=1; shift ;;
    --summary)     SUMMARY_ONLY=1; OUT=${2:?}; shift 2 ;;
    -h|--help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0 ;;
    *) echo "callgrind-profile: unknown option $1" >&2; exit 2 ;;
    esac
done
MODULE="$BUILD/.libs/mod_ark.so"
ARK_KEYS="$BUILD/ark-keys"
for t in valgrind callgrind_annotate apxs "$HTTPD" "$CC"; do
    command -v "$t" >/dev/null || { echo "callgrind-profile: $t missing (apt-get install valgrind apache2 apache2-dev gcc)" >&2; exit 2; }
done
[ -f "$MODULE" ] && [ -x "$ARK_KEYS" ] || { echo "callgrind-profile: build first (make)" >&2; exit 2; }
SYSMOD=$(apxs -q LIBEXECDIR)

TMP=$(mktemp -d /tmp/ark-callgrind.XXXXXX)
chmod 755 "$TMP"
[ -n "$OUT" ] || OUT="$TMP/out"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
chmod 1777 "$OUT"   # httpd -X writes its profile as www-data
PIDS=()
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # the temp directory goes, unless it holds the output
    if [ $rc -eq 0 ] && [ "$OUT" != "$TMP/out" ]; then
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 300); do
        "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "callgrind-profile: nothing listens on $1" >&2; exit 2
}

"$CC" -O2 -std=gnu11 -Wall -Wextra -o "$TMP/ttfb" "$BENCH/ttfb.c"
"$CC" -O2 -std=gnu11 -Wall -Wextra -o "$TMP/sse_upstream" "$BENCH/sse_upstream.c"
UP_PORT=$(free_port)
"$TMP/sse_upstream" -p "$UP_PORT" -g 0 > "$TMP/upstream.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT"

export ARK_BENCH_PROVIDER_KEY=sk-upstream-bench-0000
KEY=$("$ARK_KEYS" create -c -f "$TMP/ark-keys" -n bench -m '*' 2>/dev/null)
chmod 640 "$TMP/ark-keys"
upstream_requests() {
    "$PY" -c 'import sys, urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/stats" % sys.argv[1], timeout=5).read().decode().split()[1])' "$UP_PORT"
}
USER_LINES=""
AS_WWW=""
WWW_USER=""
if [ "$(id -u)" = 0 ]; then
    AS_WWW="runuser -u www-data --"
    WWW_USER=www-data
    chown "$WWW_USER" "$TMP/ark-keys"
fi

profile() {   # variant, mode
    local v=$1 mode=$2 root="$TMP/$1-$2" port body flag="" line
    port=$(free_port)
    mkdir -p "$root/logs" "$root/run"
    if [ "$v" = proxy ]; then
        routing="LoadModule proxy_module \"$SYSMOD/mod_proxy.so\"
LoadModule proxy_http_module \"$SYSMOD/mod_proxy_http.so\"
ProxyPass /v1/ http://127.0.0.1:$UP_PORT/v1/"
    else
        routing="LoadModule ark_module \"$MODULE\"
ArkKeysFile \"$TMP/ark-keys\"
ArkProvider bench openai http://127.0.0.1:$UP_PORT/v1 key=env:ARK_BENCH_PROVIDER_KEY
ArkModel gpt-4o-mini bench gpt-4o-mini-2024-07-18
<Location /v1>
    SetHandler ark-gateway
</Location>"
    fi
    cat > "$root/httpd.conf" <<EOF
ServerRoot "$root"
DefaultRuntimeDir "$root/run"
PidFile "$root/run/httpd.pid"
Mutex file:$root/run default
Listen 127.0.0.1:$port
ServerName 127.0.0.1
ErrorLog "$root/logs/error.log"
LogLevel warn
LoadModule mpm_event_module "$SYSMOD/mod_mpm_event.so"
LoadModule authz_core_module "$SYSMOD/mod_authz_core.so"
$USER_LINES
ThreadsPerChild 16
KeepAlive On
MaxKeepAliveRequests 0
$routing
EOF
    # valgrind itself runs as www-data when we are root: its control
    # pipes (vgdb) and output files must stay usable after httpd would
    # have switched users
    if [ -n "$WWW_USER" ]; then
        chown -R "$WWW_USER" "$root"
    fi
    $AS_WWW valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect=ap_process_async_request \
        --vgdb-prefix="$OUT/vgdb" \
        --callgrind-out-file="$OUT/callgrind-$v-$mode.out" \
        "$HTTPD" -X -d "$root" -f "$root/httpd.conf" \
        > "$root/logs/valgrind.log" 2>&1 &
    local vpid=$!
    PIDS+=("$vpid")
    wait_port "$port"
    if [ "$mode" = json ]; then
        body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant. Answer in one or two sentences."},{"role":"user","content":"What is the capital of France, and why has it been important historically?"}],"temperature":0.2,"max_tokens":128}'
        flag=--json
    else
        body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant. Answer in one or two sentences."},{"role":"user","content":"What is the capital of France, and why has it been important historically?"}],"temperature":0.2,"max_tokens":128,"stream":true}'
    fi
    # One load run: a warm-up (mod_ark's first request under valgrind
    # takes seconds of one-time initialisation), then the counters are
    # zeroed and, SECONDS later, dumped, both while the load runs (vgdb
    # reaches a busy process at once, an idle one blocked in epoll_wait
    # only through ptrace). The requests of the window are counted by the
    # upstream (each gateway request is one upstream request; the few in
    # flight at either end make the count exact to +-CONNS).
    "$TMP/ttfb" -u "http://127.0.0.1:$port/v1/chat/completions" \
        -c "$CONNS" -d $((SECONDS_RUN + 15)) -b "$body" \
        -H "Authorization: Bearer $KEY" $flag > "$root/load.txt" &
    local cpid=$!
    sleep 8
    # the valgrind process itself (runuser's child when we are root)
    VG_PID=$(pgrep -f -- "--callgrind-out-file=$OUT/callgrind-$v-$mode.out" | sort -n | tail -n 1)
    u0=$(upstream_requests)
    timeout 60 $AS_WWW callgrind_control --vgdb-prefix="$OUT/vgdb" -z "$VG_PID" > "$root/zero.log" 2>&1 \
        || { echo "callgrind-profile: callgrind_control -z failed" >&2; exit 2; }
    sleep "$SECONDS_RUN"
    timeout 60 $AS_WWW callgrind_control --vgdb-prefix="$OUT/vgdb" --dump "$VG_PID" > "$root/dump.log" 2>&1 \
        || { echo "callgrind-profile: callgrind_control -d failed" >&2; exit 2; }
    u1=$(upstream_requests)
    wait "$cpid" || true
    kill -TERM "$VG_PID" "$vpid" 2>/dev/null || true
    wait "$vpid" 2>/dev/null || true
    line="$(grep '^BENCH ' "$root/load.txt") window_requests=$((u1 - u0))"
    mv "$(ls "$OUT/callgrind-$v-$mode.out."* | head -n 1)" \
        "$OUT/callgrind-$v-$mode.out"
    echo "$v $mode $line" >> "$OUT/runs.txt"
    callgrind_annotate --inclusive=yes --threshold=100 \
        "$OUT/callgrind-$v-$mode.out" > "$OUT/annotate-$v-$mode.txt" 2>/dev/null
}

IFS=, read -r -a ML <<< "$MODES"
[ "$SUMMARY_ONLY" = 1 ] && ML=()
[ "$SUMMARY_ONLY" = 1 ] || : > "$OUT/runs.txt"
for m in "${ML[@]}"; do
    for v in proxy ark; do
        echo "profiling $v, $m (${SECONDS_RUN}s under valgrind)..."
        profile "$v" "$m"
    done
done

ARK_COMMIT=$(git -C "$BUILD" rev-parse --short HEAD 2>/dev/null || echo "unknown")
export COMMAND ARK_COMMIT
"$PY" - "$OUT" "$WRITE_DOCS" "$SRC/docs/performance.md" <<'PY'
import datetime, os, re, sys
out, write_docs, doc = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
lines = []
def say(x=""):
    print(x)
    lines.append(x)
runs = {}
for line in open(out + "/runs.txt"):
    v, mode, _, *kv = line.split()
    d = dict(x.split("=", 1) for x in kv)
    runs[(v, mode)] = d

FUNCS = [
    ("whole request (ap_process_async_request)", "ap_process_async_request"),
    ("mod_proxy handler (proxy_handler)", "proxy_handler"),
    ("mod_ark handler (ark_gateway_handler)", "ark_gateway_handler"),
    ("- client body: scan + tree (ark_chat_req_parse)", "ark_chat_req_parse"),
    ("- upstream transfer (ark_native_perform)", "ark_native_perform"),
    ("-- SSE parser (ark_sse_feed)", "ark_sse_feed"),
    ("--- OpenAI event check (ark_openai_stream_event)", "ark_openai_stream_event"),
    ("jansson parse, all calls (json_loadb)", "json_loadb"),
    ("JSON scanner, all calls (ark_json_scan)", "ark_json_scan"),
    ("JSON scanner, nested fields (ark_json_scan_nested)", "ark_json_scan_nested"),
    ("-- output to the client (ap_pass_brigade)", "ap_pass_brigade"),
    ("- answer check (ark_openai_parse_response)", "ark_openai_parse_response"),
]

def calls_of(path, fn):
    """Calls of fn recorded in a callgrind output file (names are
    compressed: "(id) name" the first time, "(id)" after)."""
    names, n, pending = {}, 0, None
    for line in open(path, errors="replace"):
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
        if m:
            if m.group(2):
                names[m.group(1)] = m.group(2)
            pending = names.get(m.group(1)) if line.startswith("cfn=") else None
            continue
        if pending == fn and line.startswith("calls="):
            n += int(line[6:].split()[0])
            pending = None
    return n

def inclusive(path):
    tot = {}
    for line in open(path):
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+\S*:(\S+)", line)
        if not m:
            m = re.match(r"\s*([\d,]+)\s+\S*:(\S+)", line)
        if m:
            n = int(m.group(1).replace(",", ""))
            name = m.group(2).split("'")[0]
            tot[name] = max(tot.get(name, 0), n)
    return tot

for mode in ("json", "stream"):
    if ("ark", mode) not in runs:
        continue
    # requests in the profile: calls of ap_invoke_handler (once per
    # request), exact, unlike the upstream's count around the window
    reqs = {v: calls_of("%s/callgrind-%s-%s.out" % (out, v, mode),
                        "ap_invoke_handler")
               or int(runs[(v, mode)]["window_requests"])
            for v in ("proxy", "ark")}
    ev = float(runs[("ark", mode)]["events_per_stream"])
    data = {v: inclusive("%s/annotate-%s-%s.txt" % (out, v, mode))
            for v in ("proxy", "ark")}
    say()
    say("%s: instructions per request (callgrind, inclusive)%s"
          % (mode, "; %.0f events per stream" % ev if mode == "stream" else ""))
    say()
    hdr = "| function | mod_proxy | mod_ark |"
    if mode == "stream":
        hdr += " mod_ark per event |"
    say(hdr)
    say("|---|---:|---:|" + ("---:|" if mode == "stream" else ""))
    for label, fn in FUNCS:
        vals = [data[v].get(fn, 0) / max(reqs[v], 1) for v in ("proxy", "ark")]
        if not any(vals):
            continue
        row = "| %s | %s | %s |" % (label, *("%.1f k" % (x / 1000) if x else "" for x in vals))
        if mode == "stream":
            row += " %.0f |" % (vals[1] / max(ev, 1))
        say(row)
    say("| requests profiled | %d | %d |%s" % (reqs["proxy"], reqs["ark"],
          " |" if mode == "stream" else ""))
print()
print("callgrind files and annotations in " + out)
if write_docs:
    now = datetime.datetime.now(datetime.timezone.utc)
    section = "\n".join([
        "<!-- bench:callgrind:begin (written by bench/callgrind-profile.sh --write-docs) -->",
        "",
        "Measured %s UTC, mod_ark %s:" % (now.strftime("%Y-%m-%d %H:%M"),
                                         os.environ["ARK_COMMIT"]),
        "",
        "```sh", os.environ["COMMAND"], "```",
    ] + lines + ["", "<!-- bench:callgrind:end -->"])
    text = open(doc).read()
    pat = re.compile(r"<!-- bench:callgrind:begin.*?<!-- bench:callgrind:end -->", re.S)
    text = pat.sub(lambda m: section, text, count=1) if pat.search(text) \
        else text.rstrip("\n") + "\n\n" + section + "\n"
    open(doc, "w").write(text)
    print("results written to docs/performance.md (section callgrind)")
PY
