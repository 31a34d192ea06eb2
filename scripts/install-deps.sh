#!/bin/sh
# Installs the Debian 12 packages Ark needs to build, test and run its
# demo, and to build its Debian packages (debhelper, dpkg-dev;
# lintian and logrotate for tests/package/test-install.sh), if any is
# missing. Safe to run again: it installs nothing when
# everything is present. Needs root (or sudo).
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config
apache2 apache2-dev libapr1-dev libaprutil1-dev
libcurl4-openssl-dev libjansson-dev libssl-dev libcmocka-dev
libhiredis-dev libfaiss-dev libblas-dev liblapack-dev g++ zlib1g-dev clang redis-server redis-tools valgrind
python3-pytest python3-yaml curl ca-certificates wrk
debhelper dpkg-dev lintian logrotate"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# Node.js + npm run the official OpenAI SDK in the integration tests; a
# machine may already have them from another source (e.g. nodesource).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0

echo "ark: installing missing Debian packages:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
