#!/bin/bash
# Package install test: builds the Debian packages from a copy of this
# tree, installs them on this machine, and checks that what they install
# works, as an admin would use it:
#   1. copy the tree (git's files, no build output) to a temp dir and run
#      dpkg-buildpackage -us -uc -b there (the source tree is not touched);
#   2. lintian on the result: errors fail the test, warnings are printed;
#   3. apt-get install --reinstall ./*.deb (dependencies from apt);
#   4. check the installed layout: conffiles, the ark-cached user and its
#      directories, the module enabled by the package (Debian convention);
#   5. start the packaged ark-cached as the ark-cached user with the
#      packaged configuration (systemctl when systemd runs, else in the
#      foreground), check PING and an ARK.STORE + ARK.LOOKUP;
#   6. a second httpd instance in the Debian layout (APACHE_CONFDIR=
#      /etc/apache2-arktest, a copy of /etc/apache2 with its own ports.conf
#      on a free loopback port), a2enmod ark there, a provider pointing at
#      tests/stub_provider.py, a key made by the packaged ark-keys; a real
#      chat completion, then the same one answered from ark-cached;
#   7. systemd-analyze verify on the unit, logrotate -d on its rule.
# Everything it starts is stopped on exit; the packages stay installed.
# Running it twice works (the second run reinstalls the new build).
#
# Needs root on Debian 12 with the build dependencies installed
# (scripts/install-deps.sh). Environment:
#   ARK_PACKAGE_CHECK=1   run the unit tests in the package build too
#                         (default: DEB_BUILD_OPTIONS=nocheck, since
#                         tests/run.sh has run them already)
#   ARK_PACKAGE_KEEP=1    keep the temp dir (build log, debs, logs)
#   ARK_PACKAGE_DEBS=DIR  test the .deb/.changes already in DIR (e.g. a
#                         kept temp dir) instead of building
# Prints the build time, package sizes and total duration.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
t_start=$(date +%s)

say() { printf 'package test: %s\n' "$*"; }
fail() { printf 'package test: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (it installs packages)"
[ -r /etc/debian_version ] || fail "needs a Debian machine"

work=$(mktemp -d /tmp/ark-pkg.XXXXXX)
# apt's sandbox user reads the .debs from here
chmod 0755 "$work"
confdir=/etc/apache2-arktest
httpd_pid="" cached_pid="" stub_pid="" cached_unit=""

cleanup() {
    rc=$?
    set +e
    if [ -n "$httpd_pid" ]; then
        kill -TERM "$httpd_pid" 2>/dev/null
        wait "$httpd_pid" 2>/dev/null
    fi
    if [ -n "$cached_unit" ]; then
        systemctl stop ark-cached.service
    fi
    if [ -n "$cached_pid" ]; then
        kill -TERM "$cached_pid" 2>/dev/null
        wait "$cached_pid" 2>/dev/null
    fi
    if [ -n "$stub_pid" ]; then
        kill -TERM "$stub_pid" 2>/dev/null
        wait "$stub_pid" 2>/dev/null
    fi
    if [ "$rc" != 0 ]; then
        for f in "$work/error.log" "$work/ark-cached.out" \
                 /var/log/ark-cached/pkgtest.log; do
            [ -s "$f" ] && { echo "--- $f (tail)"; tail -n 30 "$f"; }
        done
    fi
    rm -rf "$confdir" /var/run/apache2-arktest /var/lock/apache2-arktest \
        /var/log/apache2-arktest /var/log/ark-cached/pkgtest.log
    if [ "${ARK_PACKAGE_KEEP:-0}" = 1 ]; then
        say "kept $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------ 1. build
if [ -n "${ARK_PACKAGE_DEBS:-}" ]; then
    say "using the packages in $ARK_PACKAGE_DEBS (ARK_PACKAGE_DEBS: no build)"
    cp "$ARK_PACKAGE_DEBS"/*.deb "$ARK_PACKAGE_DEBS"/*.changes \
        "$ARK_PACKAGE_DEBS"/*.buildinfo "$work/"
    build_s=0
else
    say "copying the tree to $work/ark"
    mkdir "$work/ark"
    if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # tracked and new (not ignored) files: no build output, no .git
        # shellcheck disable=SC2016
        (cd "$top" && git ls-files -z --cached --others --exclude-standard \
            | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
            | tar --null -T - -cf -) | tar -C "$work/ark" -xf -
    else
        tar -C "$top" --exclude='./build*' --exclude='./demo-run' \
            --exclude='./debian/tmp' -cf - . | tar -C "$work/ark" -xf -
    fi

    # noddebs: no -dbgsym packages, which this test would not use
    opts="parallel=$jobs noddebs"
    [ "${ARK_PACKAGE_CHECK:-0}" = 1 ] || opts="$opts nocheck"
    say "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=$opts)"
    t0=$(date +%s)
    if ! (cd "$work/ark" && DEB_BUILD_OPTIONS="$opts" \
            dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
        tail -n 60 "$work/build.log"
        fail "package build failed (log above)"
    fi
    build_s=$(( $(date +%s) - t0 ))
    say "built in ${build_s} s"
    grep -E '^(dh_[a-z_]+|dpkg-[a-z]+): warning' "$work/build.log" \
        | grep -v -e 'dpkg-shlibdeps: warning: .*symbol' -e 'similar warnings' \
        | sed 's/^/    build: /' | head -n 20 || true
fi
# the two packages (not -dbgsym ones, when ARK_PACKAGE_DEBS has them)
debs=()
for p in libapache2-mod-ark ark-cached; do
    d=$(ls "$work/${p}_"*.deb 2>/dev/null | head -n 1) || true
    [ -n "$d" ] || fail "no $p package built"
    debs+=("$d")
done
for d in "$work"/*.deb; do
    printf '    %-48s %6d KiB  (installed %s KiB)\n' "$(basename "$d")" \
        $(( $(stat -c %s "$d") / 1024 )) \
        "$(dpkg-deb -f "$d" Installed-Size)"
done

# ------------------------------------------------------------ 2. lintian
if command -v lintian >/dev/null 2>&1; then
    t0=$(date +%s)
    lintian --tag-display-limit 0 "${debs[@]}" 2>&1 \
        | grep -v '^running with root privileges' >"$work/lintian.txt" || true
    say "lintian ($(( $(date +%s) - t0 )) s): $(grep -c '^E:' "$work/lintian.txt" || true) errors, $(grep -c '^W:' "$work/lintian.txt" || true) warnings"
    sed 's/^/    /' "$work/lintian.txt"
    ! grep -q '^E:' "$work/lintian.txt" || fail "lintian reports errors"
else
    say "lintian not installed: lint SKIPPED"
fi

# ------------------------------------------------------------ 3. install
say "apt-get install --reinstall"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall \
    --no-install-recommends "${debs[@]}" \
    >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "install failed"; }

# ------------------------------------------------------------ 4. layout
for f in /usr/lib/apache2/modules/mod_ark.so /usr/bin/ark-keys \
         /usr/bin/ark-report /usr/sbin/ark-cached /usr/bin/ark-cache-eval \
         /lib/systemd/system/ark-cached.service /etc/logrotate.d/ark-cached \
         /usr/share/man/man8/ark-cached.8.gz /usr/share/man/man1/ark-keys.1.gz; do
    [ -e "$f" ] || fail "$f not installed"
done
conffiles=$(dpkg-query -W -f='${Conffiles}\n' libapache2-mod-ark ark-cached)
for f in /etc/apache2/mods-available/ark.load /etc/apache2/mods-available/ark.conf \
         /etc/ark-cached/ark-cached.conf /etc/logrotate.d/ark-cached; do
    echo "$conffiles" | grep -q " $f " || fail "$f is not a conffile"
done
grep -qx 'LoadModule ark_module /usr/lib/apache2/modules/mod_ark.so' \
    /etc/apache2/mods-available/ark.load || fail "ark.load: wrong LoadModule line"
dpkg-query -W -f='${Depends}\n' libapache2-mod-ark | grep -q 'apache2-api-' \
    || fail "libapache2-mod-ark does not depend on apache2-api-*"
# Debian convention (dh_apache2): the module package enables its module,
# unless the admin disabled it before (a2dismod ark), which it respects
if grep -q 'apache2_invoke ark: no action - module was disabled by local admin' \
        "$work/install.log"; then
    say "module left disabled: disabled by the local admin before (a2dismod ark)"
else
    a2query -q -m ark || fail "the package did not enable the module (a2query -m ark)"
fi
id ark-cached >/dev/null 2>&1 || fail "no ark-cached user"
for d in /var/lib/ark-cached /var/log/ark-cached; do
    [ "$(stat -c %U:%G:%a "$d")" = ark-cached:ark-cached:750 ] \
        || fail "$d: $(stat -c %U:%G:%a "$d"), expected ark-cached:ark-cached:750"
done
[ "$(stat -c %U:%G:%a /etc/ark-cached/ark-cached.conf)" = root:ark-cached:640 ] \
    || fail "/etc/ark-cached/ark-cached.conf: $(stat -c %U:%G:%a /etc/ark-cached/ark-cached.conf)"
say "layout, conffiles, user, directories: ok"

# ------------------------------------------------------------ 5. ark-cached
if [ -d /run/systemd/system ]; then
    cport=$(sed -n 's/^port[ \t]\+\([0-9]\+\).*/\1/p' /etc/ark-cached/ark-cached.conf)
    cport=${cport:-7480}
    say "starting ark-cached with systemctl (port $cport)"
    systemctl restart ark-cached.service
    cached_unit=1
else
    cport=$(free_port)
    say "no systemd: ark-cached in the foreground as ark-cached (port $cport)"
    # setpriv execs the daemon itself, so $! is the daemon's pid; the log
    # file goes to the packaged log directory, which the user must own
    setpriv --reuid=ark-cached --regid=ark-cached --init-groups -- \
        /usr/sbin/ark-cached -c /etc/ark-cached/ark-cached.conf \
        --port "$cport" --daemonize no \
        --logfile /var/log/ark-cached/pkgtest.log >"$work/ark-cached.out" 2>&1 &
    cached_pid=$!
fi
for _ in $(seq 100); do
    [ "$(redis-cli -p "$cport" PING 2>/dev/null)" = PONG ] && break
    [ -z "$cached_pid" ] || kill -0 "$cached_pid" 2>/dev/null \
        || { cat "$work/ark-cached.out"; fail "ark-cached exited"; }
    sleep 0.1
done
[ "$(redis-cli -p "$cport" PING)" = PONG ] || fail "ark-cached: no PONG"
if [ -n "$cached_pid" ]; then
    [ "$(ps -o user= -p "$cached_pid")" = ark-cached ] || fail "ark-cached is not running as ark-cached"
    grep -q 'ACD00018' /var/log/ark-cached/pkgtest.log \
        || fail "no ready line in /var/log/ark-cached/pkgtest.log"
fi
payload='{"pkgtest":"'$$'"}'
sid=$(redis-cli -p "$cport" ARK.STORE pkgtest-$$ "capital of France?" "$payload")
[ "$sid" -gt 0 ] 2>/dev/null || fail "ARK.STORE answered '$sid'"
got=$(redis-cli -p "$cport" ARK.LOOKUP pkgtest-$$ "capital of France?" | head -n 1)
[ "$got" = "$payload" ] || fail "ARK.LOOKUP answered '$got', expected '$payload'"
redis-cli -p "$cport" ARK.FORGET pkgtest-$$ >/dev/null
say "ark-cached: PING, ARK.STORE + ARK.LOOKUP: ok"

# ------------------------------------------------------------ 6. httpd
stub_key="stub-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
coproc STUB { exec /usr/bin/python3 "$top/tests/stub_provider.py" --port 0 \
                  --name pkgstub --key "$stub_key" 2>"$work/stub.err"; }
# shellcheck disable=SC2153  # STUB_PID is set by coproc
stub_pid=$STUB_PID
read -r -t 20 ready sport <&"${STUB[0]}" || fail "stub provider did not start"
[ "$ready" = READY ] || fail "stub provider said '$ready'"

hport=$(free_port)
rm -rf "$confdir"
cp -a /etc/apache2 "$confdir"
export APACHE_CONFDIR=$confdir
# a2enmod/a2dismod remember an admin's choice in a state directory:
# this instance's must not touch the system's (/var/lib/apache2)
export APACHE_STATE_DIRECTORY=$work/apache2-state
mkdir -p "$APACHE_STATE_DIRECTORY"
printf 'Listen 127.0.0.1:%s\n' "$hport" >"$confdir/ports.conf"
# a2enmod as an admin runs it, in this instance's configuration
a2dismod -q ark >/dev/null 2>&1 || true
a2enmod ark >/dev/null
for f in ark.load ark.conf; do
    [ -L "$confdir/mods-enabled/$f" ] || fail "a2enmod ark did not link $f"
done

umask 077
printf '%s\n' "$stub_key" >"$confdir/stub.key"
umask 022
secret=$(/usr/bin/ark-keys create -c -f "$confdir/ark-keys" -n pkgtest \
             -m pkg-model 2>"$work/ark-keys.err") \
    || { cat "$work/ark-keys.err"; fail "ark-keys create failed"; }
case $secret in sk-ark-*) ;; *) fail "ark-keys printed no secret";; esac
chgrp www-data "$confdir/ark-keys"
chmod 0640 "$confdir/ark-keys"
cat >"$confdir/conf-available/arktest.conf" <<EOF
ServerName 127.0.0.1
ArkKeysFile $confdir/ark-keys
ArkProvider pkgstub openai http://127.0.0.1:$sport/v1 key=file:$confdir/stub.key
ArkModel pkg-model pkgstub upstream-model
ArkCacheServer 127.0.0.1:$cport
<Location /v1>
    SetHandler ark-gateway
    ArkCache on
</Location>
EOF
a2enconf -q arktest >/dev/null
# shellcheck disable=SC1091
. "$confdir/envvars"
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
/usr/sbin/apache2 -d "$confdir" -t >"$work/configtest.txt" 2>&1 \
    || { cat "$work/configtest.txt"; fail "apache2 -t failed"; }
say "httpd ($confdir) on 127.0.0.1:$hport, stub provider on $sport"
/usr/sbin/apache2 -d "$confdir" -DFOREGROUND &
httpd_pid=$!
ln -sf "$APACHE_LOG_DIR/error.log" "$work/error.log"
for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$hport/" && break
    kill -0 "$httpd_pid" 2>/dev/null || fail "httpd exited"
    sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$hport/" || fail "httpd is not answering on $hport"

chat() {  # chat KEY TEXT -> body in $work/body, headers in $work/hdr, status
    curl -sS -o "$work/body" -D "$work/hdr" -w '%{http_code}' \
        -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
        --data "{\"model\":\"pkg-model\",\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}]}" \
        "http://127.0.0.1:$hport/v1/chat/completions"
}
header() { sed -n "s/^$1: *\([^\r]*\).*/\1/Ip" "$work/hdr" | head -n 1; }

text="hello from the package test $$"
st=$(chat "$secret" "$text")
[ "$st" = 200 ] || { cat "$work/body"; fail "chat completion: HTTP $st"; }
/usr/bin/python3 - "$work/body" "pkgstub says: $text" <<'EOF' || fail "unexpected answer: $(cat "$work/body")"
import json, sys
body = json.load(open(sys.argv[1]))
assert body["object"] == "chat.completion", body
assert body["model"] == "upstream-model", body  # the provider's name for it
assert body["choices"][0]["message"]["content"] == sys.argv[2], body
EOF
[ "$(header x-ark-cache)" = miss ] || fail "first request: x-ark-cache '$(header x-ark-cache)', expected miss"
# what the provider got: the upstream model and the provider's key
curl -s "http://127.0.0.1:$sport/_stub/requests" >"$work/upstream.json"
/usr/bin/python3 - "$work/upstream.json" "$stub_key" <<'EOF' || fail "upstream request not as expected"
import json, sys
reqs = [r for r in json.load(open(sys.argv[1]))
        if r["path"].endswith("/chat/completions")]
assert len(reqs) == 1, reqs
assert reqs[0]["body"]["model"] == "upstream-model", reqs[0]["body"]
assert reqs[0]["headers"]["authorization"] == "Bearer " + sys.argv[2]
EOF
say "chat completion through the packaged module: ok"

# the same question again: answered by the packaged ark-cached (the
# store happens after the first answer was sent, so allow it a moment)
for _ in $(seq 20); do
    st=$(chat "$secret" "$text")
    [ "$st" = 200 ] && [ "$(header x-ark-cache)" = hit ] && break
    sleep 0.1
done
[ "$(header x-ark-cache)" = hit ] || fail "repeat request: x-ark-cache '$(header x-ark-cache)', expected hit"
n=$(curl -s "http://127.0.0.1:$sport/_stub/requests" | /usr/bin/python3 -c \
    'import json,sys; print(sum(r["path"].endswith("/chat/completions") for r in json.load(sys.stdin)))')
[ "$n" = 1 ] || fail "the cache hit still reached the provider ($n upstream calls)"
say "cache hit from the packaged ark-cached: ok"

st=$(chat "sk-ark-not-a-key" "$text")
[ "$st" = 401 ] || fail "wrong key: HTTP $st, expected 401"
grep -q '"error"' "$work/body" || fail "wrong key: no OpenAI error body"
for f in "$APACHE_LOG_DIR"/*.log /var/log/ark-cached/pkgtest.log; do
    [ -f "$f" ] || continue
    if grep -qF -e "$secret" -e "$stub_key" "$f"; then
        fail "a secret appears in $f"
    fi
done
if grep -E '\[(error|crit|alert|emerg)\]' "$APACHE_LOG_DIR/error.log" \
        | grep -v 'AH00169' >"$work/errors.txt"; then
    cat "$work/errors.txt"
    fail "errors in the httpd error log"
fi
say "wrong key refused with 401, no secret in any log: ok"

# ------------------------------------------------------------ 7. checks
if command -v systemd-analyze >/dev/null 2>&1; then
    if systemd-analyze verify /lib/systemd/system/ark-cached.service \
            >"$work/verify.txt" 2>&1; then
        say "systemd-analyze verify: ok"
    else
        cat "$work/verify.txt"
        fail "systemd-analyze verify"
    fi
else
    say "systemd-analyze not installed: unit check SKIPPED"
fi
if command -v logrotate >/dev/null 2>&1; then
    logrotate -d /etc/logrotate.d/ark-cached >"$work/logrotate.txt" 2>&1 \
        || { cat "$work/logrotate.txt"; fail "logrotate -d"; }
    ! grep -qi 'error' "$work/logrotate.txt" \
        || { cat "$work/logrotate.txt"; fail "logrotate -d reports an error"; }
    say "logrotate -d: ok"
fi

say "PASS in $(( $(date +%s) - t_start )) s (package build ${build_s} s)"
