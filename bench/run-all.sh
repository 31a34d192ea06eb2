#!/bin/bash
# Every gateway figure of docs/performance.md in one unattended run:
#
#   1. bench/run-gateway-bench.sh     non-streaming, mod_ark vs mod_proxy
#   2. bench/stream-bench.sh          streaming, mod_ark vs mod_proxy, the
#                                     whole stream in one upstream write
#   3. bench/stream-bench.sh --gap-us 1000
#                                     streaming, one event per ms (TTFT and
#                                     whole-stream time of a paced model)
#   4. bench/portkey-bench.sh         mod_ark vs Portkey, non-streaming and
#                                     paced streaming
#   5. bench/callgrind-profile.sh     instructions per request and per event
#
# With --write-docs each step rewrites its marked section of
# docs/performance.md. Output of every step is kept in the log directory.
# Takes about 15 minutes with the defaults (3 rounds of 10 s); run it on
# an otherwise idle machine (each step reports the other CPU load).
#
# Usage: bench/run-all.sh [--rounds 3] [--duration 10] [--write-docs]
#            [--no-portkey] [--no-callgrind] [--logs DIR]
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=3
DURATION=10
DOCS=()
PORTKEY=1
CALLGRIND=1
LOGS=""
while [ $# -gt 0 ]; do
    case "$1" in
    --rounds)       ROUNDS=${2:?}; shift 2 ;;
    --duration)     DURATION=${2%s}; shift 2 ;;
    --write-docs)   DOCS=(--write-docs); shift ;;
    --no-portkey)   PORTKEY=0; shift ;;
    --no-callgrind) CALLGRIND=0; shift ;;
    --logs)         LOGS=${2:?}; shift 2 ;;
    -h|--help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0 ;;
    *) echo "run-all: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$LOGS" ] || LOGS=$(mktemp -d /tmp/ark-run-all.XXXXXX)
mkdir -p "$LOGS"
FAILED=()
step() {   # name, command...
    local name=$1 t0=$SECONDS
    shift
    echo "=== $name: $*"
    if "$@" 2>&1 | tee "$LOGS/$name.log"; then
        echo "=== $name: done in $((SECONDS - t0)) s"
    else
        echo "=== $name: FAILED (see $LOGS/$name.log)"
        FAILED+=("$name")
    fi
}
step nonstream "$BENCH/run-gateway-bench.sh" --rounds "$ROUNDS" \
    --duration "${DURATION}s" "${DOCS[@]}"
step stream-burst "$BENCH/stream-bench.sh" --rounds "$ROUNDS" \
    --duration "$DURATION" "${DOCS[@]}"
step stream-paced "$BENCH/stream-bench.sh" --gap-us 1000 --rounds "$ROUNDS" \
    --duration "$DURATION" "${DOCS[@]}"
if [ "$PORTKEY" = 1 ]; then
    step portkey "$BENCH/portkey-bench.sh" --rounds "$ROUNDS" \
        --duration "$DURATION" "${DOCS[@]}"
fi
if [ "$CALLGRIND" = 1 ]; then
    step callgrind "$BENCH/callgrind-profile.sh" --modes json,stream \
        --seconds 10 "${DOCS[@]}"
fi
echo
echo "summary (logs in $LOGS):"
grep -h -E "^(target|mod_ark vs|Result)|target (MET|MISSED)|runs had more" \
    "$LOGS"/*.log || true
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "failed steps: ${FAILED[*]}" >&2
    exit 1
fi
