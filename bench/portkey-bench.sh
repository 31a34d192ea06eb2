#!/bin/bash
# mod_ark against the Portkey AI gateway (npm @portkey-ai/gateway, pinned
# in bench/stream-bench.sh, installed into ~/.cache/ark-bench at first
# use, never committed), both in front of the same local upstream, at the
# same concurrency: non-streaming (nginx, the fixed chat.completion of
# bench/run-gateway-bench.sh) and streaming (bench/sse_upstream.c, one
# event per millisecond after the first). Portkey is the baseline, so the
# ratios read "mod_ark vs Portkey".
#
# Streaming through Portkey 1.15.2 on Debian 12's node 20 fails: every
# streamed request gets HTTP 500 {"status":"failure","message":"Something
# went wrong"} (its log: "TypeError: immutable" in updateHeaders, as in
# Portkey's GitHub issues #1389 and #1550); the streaming part is still
# tried, so that a fixed Portkey or another node is measured, and its
# failure is reported without failing the whole script.
#
# Usage: bench/portkey-bench.sh [--no-stream] [stream-bench options, e.g.
#            --rounds 3 --duration 10 --write-docs --portkey-port 8787]
# Sections written with --write-docs: json-portkey-ark and
# stream-paced-portkey-ark of docs/performance.md.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STREAM=1
ARGS=()
for a in "$@"; do
    if [ "$a" = --no-stream ]; then STREAM=0; else ARGS+=("$a"); fi
done
"$BENCH/stream-bench.sh" --variants portkey,ark --json "${ARGS[@]}"
if [ "$STREAM" = 1 ]; then
    if ! "$BENCH/stream-bench.sh" --variants portkey,ark --gap-us 1000 "${ARGS[@]}"; then
        echo "portkey-bench: the streaming comparison could not run (see" \
             "above; Portkey 1.15.2 on node 20 answers streamed requests" \
             "with HTTP 500)" >&2
    fi
fi
