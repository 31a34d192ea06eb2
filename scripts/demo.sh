#!/bin/sh
# One command from a fresh Debian 12 machine to a running Ark demo:
# installs what is missing, builds mod_ark, starts the stand-in provider
# and httpd with mod_ark on loopback, creates a virtual key and prints a
# curl line to try. Runs in the foreground; Ctrl-C stops everything.
#   ARK_DEMO_PORT   gateway port (default 8080)
#   ARK_DEMO_DIR    where config, keys and logs go (default ./demo-run)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
port=${ARK_DEMO_PORT:-8080}
root=${ARK_DEMO_DIR:-$top/demo-run}

"$top/scripts/install-deps.sh"

cd "$top"
if [ ! -x ./configure ]; then
    autoreconf -fi
fi
build="$top/build"
mkdir -p "$build"
if [ ! -f "$build/Makefile" ]; then
    (cd "$build" && ../configure >/dev/null)
fi
make -C "$build" -j"$(nproc)" >/dev/null

rm -rf "$root"
mkdir -p "$root/logs" "$root/run"
httpd=$(command -v apache2 || echo /usr/sbin/apache2)
sysmoddir=$(apxs -q LIBEXECDIR)

# the stand-in provider, on a free port
ARK_DEMO_PROVIDER_KEY="sk-demo-provider-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export ARK_DEMO_PROVIDER_KEY
/usr/bin/python3 "$top/tests/stub_provider.py" --port 0 --name demo-llm \
    --key "$ARK_DEMO_PROVIDER_KEY" --chunk-delay-ms 80 > "$root/stub.out" &
stub_pid=$!
cleanup() {
    [ -f "$root/run/httpd.pid" ] && kill "$(cat "$root/run/httpd.pid")" 2>/dev/null
    kill "$stub_pid" 2>/dev/null
    wait 2>/dev/null
}
trap cleanup EXIT INT TERM
for _ in $(seq 50); do
    grep -q READY "$root/stub.out" 2>/dev/null && break
    sleep 0.1
done
stub_port=$(awk '/READY/ {print $2}' "$root/stub.out")
[ -n "$stub_port" ] || { echo "ark: the stand-in provider did not start" >&2; exit 1; }

user=""
if [ "$(id -u)" = 0 ]; then
    user="User www-data
Group www-data"
fi
sed -e "s|@ROOT@|$root|g" -e "s|@PORT@|$port|g" \
    -e "s|@SYSMODDIR@|$sysmoddir|g" -e "s|@MODULE@|$build/.libs/mod_ark.so|g" \
    -e "s|@STUB_URL@|http://127.0.0.1:$stub_port|g" \
    "$top/conf/ark-demo.conf.in" | awk -v u="$user" '{ if ($0 == "@USER@") print u; else print }' \
    > "$root/httpd.conf"

key=$("$build/ark-keys" create -c -f "$root/ark-keys" -n demo -t demo-team \
      -m 'gpt-4o-mini,demo-large' 2>/dev/null)
chmod 640 "$root/ark-keys"
if [ "$(id -u)" = 0 ]; then
    chgrp www-data "$root/ark-keys"
fi

"$httpd" -d "$root" -f "$root/httpd.conf" -DFOREGROUND &
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done

cat <<MSG

  Ark is up: httpd with mod_ark on http://127.0.0.1:$port/v1
  (routing to the stand-in provider on port $stub_port).

  Your virtual key (shown once): $key

  Try it:
    curl -s http://127.0.0.1:$port/v1/chat/completions \\
      -H "Authorization: Bearer $key" -H "Content-Type: application/json" \\
      -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello Ark"}]}'

  Streaming: add "stream": true and curl -N.   Models: curl -s http://127.0.0.1:$port/v1/models -H "Authorization: Bearer $key"
  Logs: $root/logs/ (error.log, ark-access.log).   Ctrl-C stops the demo.

MSG
wait
