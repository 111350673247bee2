#!/bin/sh
# The package tests (issue 13), run by .ci/run after `cargo test`, as root on a throw-away machine: build the
# .deb, install it with dpkg, check what it installed, purge it, check what purge left. Any failed check ends
# the script with its message and exit 1 (the package is purged on the way out either way).
set -eu
cd "$(dirname "$0")/.."
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (it installs and purges the package)"
! dpkg -s proxkeep >/dev/null 2>&1 || fail "proxkeep is installed already; this test installs and purges its own build"

deb=$(packaging/build-deb.sh | tail -n 1)
[ -f "$deb" ] || fail "no .deb built ($deb)"
echo "test-deb: $deb"
tmp=$(mktemp -d)
made=""
cleanup() {
  dpkg -P proxkeep >/dev/null 2>&1 || true
  for d in $made; do rm -rf "$d"; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Control fields: libc only, the optional tools suggested.
depends=$(dpkg-deb -f "$deb" Depends)
echo "$depends" | tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep -vx libc6 && fail "Depends: $depends"
[ "$(dpkg-deb -f "$deb" Suggests)" = "rclone, age" ] || fail "Suggests: $(dpkg-deb -f "$deb" Suggests)"
# No maintainer script enables or starts a unit.
dpkg-deb -e "$deb" "$tmp/control"
! grep -sE 'systemctl +(enable|start)|deb-systemd-helper +enable|deb-systemd-invoke +start' "$tmp"/control/*inst \
  || fail "a maintainer script enables or starts a unit"

# lintian: no errors (warnings are printed, and listed in the round's report).
lintian --fail-on error --tag-display-limit 0 "$deb" || fail "lintian found errors"

dpkg -i "$deb" >/dev/null
/usr/bin/proxkeep --version | grep -qx "proxkeep $(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')" \
  || fail "/usr/bin/proxkeep --version: $(/usr/bin/proxkeep --version)"

# Man pages: proxkeep(1) and one per subcommand, each rendered by man without a warning.
[ -f /usr/share/man/man1/proxkeep.1.gz ] && [ -f /usr/share/man/man1/proxkeep-restore.1.gz ] || fail "man pages missing"
for page in $(dpkg -L proxkeep | grep '^/usr/share/man/man1/.*\.1\.gz$'); do
  err=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null) || fail "man -l $page failed: $err"
  [ -z "$err" ] || fail "man -l $page: $err"
done

# Completions where each shell looks for them; bash's own loader finds and completes `proxkeep res`.
[ -s /usr/share/zsh/vendor-completions/_proxkeep ] || fail "zsh completion missing"
[ -s /usr/share/fish/vendor_completions.d/proxkeep.fish ] || fail "fish completion missing"
got=$(bash -c '. /usr/share/bash-completion/bash_completion; __load_completion proxkeep || exit 1
  f=$(complete -p proxkeep | sed -E "s/.* -F ([^ ]+) .*/\1/")
  COMP_WORDS=(proxkeep res); COMP_CWORD=1; COMP_LINE="proxkeep res"; COMP_POINT=12
  "$f" proxkeep res proxkeep; echo "${COMPREPLY[*]}"')
[ "$got" = restore ] || fail "bash completion of 'proxkeep res': '$got'"

# The units: verified as installed, and not enabled.
units=/usr/lib/systemd/system
err=$(systemd-analyze verify $units/proxkeep.service $units/proxkeep.timer $units/proxkeep-drill.service \
  $units/proxkeep-drill.timer 2>&1) || fail "systemd-analyze verify: $err"
[ -z "$err" ] || fail "systemd-analyze verify: $err"
for t in proxkeep.timer proxkeep-drill.timer; do
  [ ! -e /etc/systemd/system/timers.target.wants/$t ] || fail "$t was enabled"
done
grep -qx 'ExecStart=/usr/bin/proxkeep drill' $units/proxkeep-drill.service || fail "proxkeep-drill.service does not run a drill"
grep -qx 'OnCalendar=weekly' $units/proxkeep-drill.timer || fail "proxkeep-drill.timer is not weekly"

# The conffile: registered, 0600, and parsing to exactly the built-in defaults.
dpkg-query -W -f='${Conffiles}\n' proxkeep | grep -q '^ /etc/proxkeep/proxkeep.toml ' || fail "not a conffile"
[ "$(stat -c %a /etc/proxkeep/proxkeep.toml)" = 600 ] || fail "conffile mode $(stat -c %a /etc/proxkeep/proxkeep.toml)"
: >"$tmp/empty.toml"
/usr/bin/proxkeep --config /etc/proxkeep/proxkeep.toml config show >"$tmp/installed.txt"
/usr/bin/proxkeep --config "$tmp/empty.toml" config show >"$tmp/defaults.txt"
diff -u "$tmp/defaults.txt" "$tmp/installed.txt" || fail "the installed config is not the defaults"
/usr/bin/proxkeep config check /etc/proxkeep/proxkeep.toml >/dev/null || fail "config check of the installed config"

# Purge removes the config, never backups or logs (stand-ins in the default directories).
for d in /var/backups/proxkeep /var/log/proxkeep; do
  [ -e "$d" ] || made="$made $d"
  mkdir -p "$d"
  echo keep >"$d/test-deb-marker"
done
dpkg -P proxkeep >/dev/null
[ ! -e /etc/proxkeep/proxkeep.toml ] || fail "purge left the config"
[ ! -e /usr/bin/proxkeep ] || fail "purge left the binary"
for d in /var/backups/proxkeep /var/log/proxkeep; do
  [ "$(cat "$d/test-deb-marker" 2>/dev/null)" = keep ] || fail "purge touched $d"
  rm -f "$d/test-deb-marker"
done
echo "test-deb: ok"
