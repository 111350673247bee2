#!/usr/bin/env bash
# Issue 16, "Restore runs out of file descriptors" (a bench, not a test): backup, restore --target and extract
# of 200,000 tiny files, each run at `ulimit -n 1024` (soft and hard, as a Debian root shell has it), with its
# wall time and peak RSS. Restore and extract must succeed and give back the tree (checked with diff -r).
# The tree is bench/gen_tree.py's shape (files spread over 16 x 500 directories under /etc/pve).
#
# usage: bench/manyfiles.sh [FILES]   (default 200000; needs about 2.5 GB under /var/tmp)
#        PROXKEEP_BIN=path/to/proxkeep bench/manyfiles.sh ...   (that binary instead of a release build)
# Peak RSS comes from `/usr/bin/time -v` when it is installed, else from the kernel's rusage of the child
# (python3's resource module, which reads the same figure).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-200000}
for t in python3 diff; do command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }; done

if [ -z "${PROXKEEP_BIN:-}" ]; then
  cargo build --release --locked -q
fi
BIN=${PROXKEEP_BIN:-${CARGO_TARGET_DIR:-target}/release/proxkeep}
W=$(mktemp -d /var/tmp/proxkeep-manyfiles.XXXXXX)
trap 'rm -rf "$W"' EXIT

# About 250 bytes a file.
python3 bench/gen_tree.py "$W/root" --files "$FILES" --mb $((FILES / 4000 + 1))
printf 'backup_dir = "%s/backups"\nlog_dir = "%s/logs"\nlock_file = "%s/lock"\nmin_free_space = 0\n' "$W" "$W" "$W" \
  >"$W/proxkeep.toml"
PK=("$BIN" --config "$W/proxkeep.toml" --root "$W/root" -q)
limited=(sh -c 'ulimit -n 1024 && exec "$@"' sh)

# Exit 3 is success with warnings: the bench tree is a PVE node without config.db, which proxkeep warns about.
measure() { # name command...
  local name=$1 wall rss rc=0; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v -o "$W/time" "${limited[@]}" "$@" >/dev/null || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "$name failed: exit $rc" >&2; exit 1; }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$W/time")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$W/time")
  else
    read -r wall rss < <(python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print("%.2f %d" % (time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(0 if r.returncode in (0, 3) else r.returncode)' "${limited[@]}" "$@")
  fi
  printf '%-10s %9.2f s %9d KiB\n' "$name" "$wall" "$rss"
}

echo "$FILES files, $(du -sm "$W/root" | cut -f1) MB on disk, ulimit -n 1024 (soft and hard), $(nproc) cores"
printf '%-10s %11s %13s\n' "" "wall" "peak RSS"
measure backup "${PK[@]}" backup
ARCHIVE=$(ls "$W"/backups/*.tar.zst)
mkdir "$W/restored"
measure restore "${PK[@]}" restore "$ARCHIVE" --target "$W/restored" --path / --yes --no-safety-backup
measure extract "${PK[@]}" extract "$ARCHIVE" "$W/extracted"
for out in restored extracted; do
  diff -r "$W/root/etc/pve" "$W/$out/etc/pve" >/dev/null || { echo "$out differs from the source" >&2; exit 1; }
done
echo "restored and extracted trees equal the source"
