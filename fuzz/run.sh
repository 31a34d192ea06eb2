#!/bin/sh
# Builds the libFuzzer harnesses of fuzz/ with clang and runs each on its
# seed corpus for a bounded time (docs/fuzzing.md). `make fuzz` calls it;
# CI calls it directly, without configure or make.
#
#   fuzz/run.sh [-u] [SECONDS] [TARGET...]
#
# SECONDS  time each target fuzzes (default $FUZZ_SECONDS, else 60);
#          0 only replays the corpus, every seed once (a regression run)
# TARGET   jsonscan request translate_request translate_response
#          translate_stream front_request sse resp keys (default: all)
# -u       update: afterwards, merge the inputs that found new coverage
#          into the committed corpus fuzz/corpus/TARGET (`make fuzz-update`)
#
# The harnesses and the mod_ark/cachesvc sources they drive are compiled
# with -fsanitize=fuzzer,address,undefined into $FUZZ_OUT (default
# fuzz/bin). New inputs go to a temporary directory, so a run leaves the
# committed corpus as it was unless -u is given. Crashes, leaks, timeouts
# and failed checks are saved in $FUZZ_OUT/crashes/TARGET/ and make the
# script exit 1, after printing how to replay them.
#
# Environment: FUZZ_CC (default: the first of clang, clang-19 ... clang-14
# found), FUZZ_JOBS (targets run at once; default: the number of CPUs),
# FUZZ_OUT.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$top/fuzz"
out=${FUZZ_OUT:-$fuzz/bin}
update=0
if [ "${1:-}" = "-u" ]; then
    update=1
    shift
fi
secs=${FUZZ_SECONDS:-60}
case "${1:-}" in
    ''|*[!0-9]*) ;;
    *) secs=$1; shift ;;
esac
all="jsonscan request translate_request translate_response translate_stream
front_request sse resp keys"
targets=${*:-$all}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

die() {
    echo "fuzz/run.sh: $*" >&2
    exit 1
}

# ------------------------------------------------------------- compiler
cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
    for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
        if command -v "$c" >/dev/null 2>&1; then
            cc=$c
            break
        fi
    done
fi
[ -n "$cc" ] || die "clang not found: install the Debian package clang"
for t in $targets; do
    [ -f "$fuzz/fuzz_$t.c" ] || die "unknown target '$t' (known: $(echo $all))"
done

apr_cflags=$(apr-1-config --cflags --cppflags --includes) \
    || die "apr-1-config not found: install the Debian package libapr1-dev"
apr_libs=$(apr-1-config --link-ld --libs)
pkgs="libcurl jansson libcrypto hiredis"
pkg_cflags=$(pkg-config --cflags $pkgs) \
    || die "pkg-config cannot find $pkgs (see README.md for the packages)"
pkg_libs=$(pkg-config --libs $pkgs)

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE $san
-Wall -Wextra -Wno-unused-parameter $apr_cflags $pkg_cflags"
ark_inc="-I$top/mod_ark"
cs_inc="-I$top/cachesvc"

# The sources each library is made of: what the harnesses call and what
# that calls in turn. No httpd headers, no configure-made config.h.
ark_srcs="ark_error ark_front_anthropic ark_jsonscan ark_jsonbuild ark_keys ark_limit
ark_provider ark_provider_anthropic ark_provider_azure ark_provider_gemini
ark_provider_openai ark_request ark_route ark_signals ark_sse ark_trace"
cs_srcs="cs_common cs_resp"

# ---------------------------------------------------------------- build
mkdir -p "$out/obj" "$out/log" "$out/crashes"

# compile SRC OBJ FLAGS...: rebuilt when the object is older than the
# source, this script or any header of mod_ark/, cachesvc/ or fuzz/.
compile() {
    src=$1 obj=$2
    shift 2
    if [ -f "$obj" ] && ! [ "$src" -nt "$obj" ] && ! [ "$0" -nt "$obj" ] \
            && [ -z "$(find "$top/mod_ark" "$top/cachesvc" "$fuzz" \
                -maxdepth 1 -name '*.h' -newer "$obj" 2>/dev/null)" ]; then
        return 0
    fi
    # shellcheck disable=SC2086
    "$cc" $cflags "$@" -c "$src" -o "$obj" || die "cannot compile $src"
}

build_lib() {
    lib=$1 dir=$2 inc=$3
    shift 3
    objs=""
    for s in "$@"; do
        compile "$top/$dir/$s.c" "$out/obj/$s.o" \
            -fsanitize=fuzzer-no-link $inc
        objs="$objs $out/obj/$s.o"
    done
    rm -f "$out/obj/$lib"
    # shellcheck disable=SC2086
    ar rcs "$out/obj/$lib" $objs
}

echo "=== building fuzz targets with $cc into $out"
# shellcheck disable=SC2086
build_lib libarkfuzz.a mod_ark "$ark_inc" $ark_srcs
# shellcheck disable=SC2086
build_lib libcsfuzz.a cachesvc "$cs_inc" $cs_srcs
# the harnesses' helpers: fuzz_provider only for those that use it
for s in fuzz_common fuzz_provider; do
    compile "$fuzz/$s.c" "$out/obj/$s.o" -fsanitize=fuzzer-no-link \
        $ark_inc -Werror
done
rm -f "$out/obj/libfuzzutil.a"
ar rcs "$out/obj/libfuzzutil.a" "$out/obj/fuzz_common.o" \
    "$out/obj/fuzz_provider.o"

for t in $targets; do
    case $t in
        resp) inc=$cs_inc lib=libcsfuzz.a ;;
        *) inc=$ark_inc lib=libarkfuzz.a ;;
    esac
    compile "$fuzz/fuzz_$t.c" "$out/obj/fuzz_$t.o" -fsanitize=fuzzer-no-link \
        $inc -I"$fuzz" -Werror
    # shellcheck disable=SC2086
    "$cc" -g $san -fsanitize=fuzzer -o "$out/fuzz_$t" "$out/obj/fuzz_$t.o" \
        "$out/obj/libfuzzutil.a" "$out/obj/$lib" $pkg_libs $apr_libs -lm \
        || die "cannot link fuzz_$t"
done

# ------------------------------------------------------------------ run
work=$(mktemp -d "${TMPDIR:-/tmp}/ark-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# The dictionary a target's inputs are made of.
dict_of() {
    case $1 in
        sse|translate_stream) echo "$fuzz/dict/sse.dict" ;;
        resp) echo "$fuzz/dict/resp.dict" ;;
        keys) echo "$fuzz/dict/keys.dict" ;;
        *) echo "$fuzz/dict/json.dict" ;;
    esac
}

# run_one TARGET: fuzzes (or replays) one target; the log goes to
# $out/log/TARGET.log, the exit status to $work/TARGET.rc.
run_one() {
    t=$1
    corpus="$fuzz/corpus/$t"
    crashes="$out/crashes/$t"
    rm -rf "$crashes"
    mkdir -p "$work/$t" "$crashes" "$corpus"
    if [ "$secs" = 0 ]; then
        mode="-runs=0"
    else
        mode="-max_total_time=$secs"
    fi
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$out/fuzz_$t" $mode -timeout=10 -rss_limit_mb=2048 \
            -max_len=16384 -print_final_stats=1 \
            -dict="$(dict_of "$t")" -artifact_prefix="$crashes/" \
            "$work/$t" "$corpus" >"$out/log/$t.log" 2>&1 || rc=$?
    if [ "$rc" = 0 ] && [ "$update" = 1 ]; then
        "$out/fuzz_$t" -merge=1 -max_len=16384 "$corpus" "$work/$t" \
            >>"$out/log/$t.log" 2>&1 || rc=$?
    fi
    echo "$rc" >"$work/$t.rc"
}

if [ "$secs" = 0 ]; then
    echo "=== replaying the seed corpora"
else
    echo "=== fuzzing each target for ${secs}s, $jobs at a time"
fi
running=0
for t in $targets; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

# ------------------------------------------------------------- summary
failed=""
printf '%-20s %10s %8s %7s %7s %7s  %s\n' target runs exec/s cov ft corpus \
    result
for t in $targets; do
    log="$out/log/$t.log"
    rc=$(cat "$work/$t.rc" 2>/dev/null || echo 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/\1 \2 \3/p' \
        "$log" | tail -1)
    set -- $cov
    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed="$failed $t"
    fi
    printf '%-20s %10s %8s %7s %7s %7s  %s\n' "$t" "${runs:--}" "${eps:--}" \
        "${1:--}" "${2:--}" "${3:--}" "$result"
done
if [ -n "$failed" ]; then
    for t in $failed; do
        echo
        echo "--- $t: $out/log/$t.log"
        grep -E 'ERROR|fuzz check failed|runtime error|SUMMARY|Test unit written' \
            "$out/log/$t.log" | head -20
        for a in "$out/crashes/$t"/*; do
            [ -f "$a" ] && echo "replay: $out/fuzz_$t $a"
        done
    done
    exit 1
fi
