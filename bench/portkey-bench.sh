#!/bin/bash
# mod_ark against the Portkey AI gateway (npm @portkey-ai/gateway, pinned
# in bench/stream-bench.sh, installed into ~/.cache/ark-bench at first
# use, never committed), both in front of the same local upstream, at the
# same concurrency: non-streaming (nginx, the fixed chat.completion of
# bench/run-gateway-bench.sh) and streaming (bench/sse_upstream.c, one
# event per millisecond after the first). Portkey is the baseline, so the
# ratios read "mod_ark vs Portkey".
#
# Usage: bench/portkey-bench.sh [stream-bench options, e.g. --rounds 3
#            --duration 10 --write-docs --portkey-port 8787]
# Sections written with --write-docs: json-portkey-ark and
# stream-paced-portkey-ark of docs/performance.md.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$BENCH/stream-bench.sh" --variants portkey,ark --json "$@"
"$BENCH/stream-bench.sh" --variants portkey,ark --gap-us 1000 "$@"
