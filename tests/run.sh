#!/bin/sh
# The whole test suite, as CI runs it (.ci/run calls this script):
#   1. build with -Wall -Wextra -Werror in build/ and run the cmocka unit
#      tests (make check);
#   2. build again with AddressSanitizer + UndefinedBehaviorSanitizer in
#      build-asan/ and run the unit tests there;
#   3. run the pytest integration tests against the real httpd binary
#      loading build/'s mod_ark.so; among them the soak (test_98,
#      ARK_SOAK_SECONDS, default 140) and the memory-checker runs
#      (test_99: ark-cached under valgrind, httpd -X loading
#      build-asan/'s mod_ark.so), required here, not skipped.
#   4. as root: build the Debian packages from a copy of the tree, install
#      them and run them (tests/package/test-install.sh); skipped, with a
#      SKIPPED line, when not root or when ARK_SKIP_PACKAGE_TEST=1.
# Installs missing Debian packages first. Exits non-zero on any failure.
# Extra arguments go to pytest (e.g. -k stream).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

"$top/scripts/install-deps.sh"

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] \
        || [ Makefile.am -nt configure ]; then
    autoreconf -fi
fi

step() { printf '\n=== %s ===\n' "$*"; }

step "build (-Werror) and unit tests"
mkdir -p build
(cd build && ../configure --enable-werror >/dev/null \
    && make -j"$jobs" >/dev/null && make -j"$jobs" check) \
    || { cat build/test-suite.log 2>/dev/null; exit 1; }

step "unit tests under ASan + UBSan"
mkdir -p build-asan
(cd build-asan && ../configure --enable-werror --enable-sanitizers \
        >/dev/null \
    && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       make -j"$jobs" check) \
    || { cat build-asan/test-suite.log 2>/dev/null; exit 1; }

step "fuzz targets, ${FUZZ_SECONDS:-10} s each"; FUZZ_OUT="$top/build-fuzz" "$top/fuzz/run.sh" "${FUZZ_SECONDS:-10}"

step "integration tests (real httpd + mod_ark)"
ARK_BUILD_DIR="$top/build" ARK_ASAN_BUILD_DIR="$top/build-asan" \
ARK_MEMCHECK_REQUIRED=1 /usr/bin/python3 -m pytest -q \
    -p no:cacheprovider "$top/tests/test_stub_selfcheck.py" \
    "$top/tests/integration" "$@"

step "Debian packages: build, lintian, install, run"
if [ "${ARK_SKIP_PACKAGE_TEST:-0}" = 1 ]; then
    echo "SKIPPED: package install test (ARK_SKIP_PACKAGE_TEST=1)"
elif [ "$(id -u)" != 0 ]; then
    echo "SKIPPED: package install test (needs root: it installs the packages)"
else
    "$top/tests/package/test-install.sh"
fi
