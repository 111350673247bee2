#!/usr/bin/env bash
# Benchmark for issues 2 and 16 (not a test): proxkeep backup (read-back included) against
# `tar -cf - etc | zstd -3 -T0 -o A && zstd -t A` on the same tree, in the same run, in alternating pairs: each
# pair runs both back to back (order alternating), and the figures are the medians of the pairwise ratios
# proxkeep/reference of wall time and of CPU time (user+sys), which cancel most of a shared machine's load.
# Then peak RSS on the bench tree, and RSS growth per file between 20,000 and 200,000 tiny files; then twenty
# 1-second stub commands.
# Targets (issue 16): wall <= 1.15x, CPU <= 1.30x, peak RSS <= 64 MiB, growth <= 300 bytes per file.
# Measured (2 CPUs, 15 pairs, 2026-11-30): wall 0.98x, CPU 1.11x, peak RSS 54 MiB, growth 235 bytes per file
# (before the scan through directory handles, batched hand-over, early write-out and a single SHA-256 of the
# archive: wall 1.15-1.17x, CPU 1.22-1.25x, 53 MiB, 290 bytes).
# usage: bench/backup.sh [PAIRS]   (default 7; needs ~2.5 GB under /var/tmp)
#        PROXKEEP=/path/to/proxkeep bench/backup.sh ...   (that binary instead of a fresh release build)
#        BENCH_DIR=/var/tmp/dir bench/backup.sh ...       (trees made there once and kept, for runs to compare)
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-7}
for t in python3 tar zstd; do command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }; done
P=${PROXKEEP:-}
if [ -z "$P" ]; then
  cargo build --release -q
  P=${CARGO_TARGET_DIR:-$PWD/target}/release/proxkeep
fi
if [ -n "${BENCH_DIR:-}" ]; then
  W=$BENCH_DIR; mkdir -p "$W"
else
  W=$(mktemp -d /var/tmp/proxkeep-bench.XXXXXX)
  trap 'rm -rf "$W"' EXIT
fi
[ -d "$W/root" ] || python3 bench/gen_tree.py "$W/root" >/dev/null
[ -d "$W/tiny20k" ] || python3 bench/gen_tree.py "$W/tiny20k" --files 20000 --mb 1 >/dev/null
[ -d "$W/tiny200k" ] || python3 bench/gen_tree.py "$W/tiny200k" --files 200000 --mb 10 >/dev/null
cat >"$W/cfg.toml" <<TOML
backup_dir = "$W/backups"
log_dir = "$W/logs"
lock_file = "$W/lock"
min_free_space = 0
[commands]
run = "never"
TOML

# Run a command; print "wall_seconds cpu_seconds peak_rss_kib" of it and its children (wait4's rusage). Exit 3 is
# success with warnings: the bench tree is a PVE node without config.db, which proxkeep warns about.
# `sync` first, untimed: proxkeep fsyncs its archive, and on ext4 that also flushes whatever the previous run left
# dirty (the other side's output), which would charge one side for the other.
measure() {
  sync
  python3 -c '
import os, subprocess, sys, time
s = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
w = time.monotonic() - s
if os.waitstatus_to_exitcode(status) not in (0, 3):
    sys.exit("failed: %s" % " ".join(sys.argv[1:]))
print("%.4f %.4f %d" % (w, ru.ru_utime + ru.ru_stime, ru.ru_maxrss))' "$@"
}
ours() { rm -rf "$W/backups" "$W/logs"; measure "$P" --config "$W/cfg.toml" --root "$1" -q backup; }
ref() {
  rm -f "$W/ref.tar.zst"
  measure sh -c "tar -cf - -C '$W/root' etc | zstd -q -3 -T0 -o '$W/ref.tar.zst' && zstd -q -t '$W/ref.tar.zst'"
}
med() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "tree: $(find "$W/root/etc/pve" -type f | wc -l) files, $(du -sm "$W/root/etc/pve" | cut -f1) MB;" \
  "$(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); $PAIRS pairs"
tar -cf - -C "$W/root" . >/dev/null # warm the page cache for both alike
ours "$W/root" >/dev/null
: >"$W/pairs"
for i in $(seq "$PAIRS"); do
  if [ $((i % 2)) = 1 ]; then o=$(ours "$W/root"); r=$(ref); else r=$(ref); o=$(ours "$W/root"); fi
  echo "$o $r" >>"$W/pairs"
  set -- $o $r
  printf 'pair %d: proxkeep %.3fs cpu %.3fs, tar|zstd %.3fs cpu %.3fs: wall %.3fx cpu %.3fx\n' "$i" "$1" "$2" "$4" "$5" \
    "$(echo "$1 $4" | awk '{ print $1 / $2 }')" "$(echo "$2 $5" | awk '{ print $1 / $2 }')"
done
# Columns: our wall cpu rss, reference wall cpu rss.
col() { awk "{ print $1 }" "$W/pairs" | med; }
printf 'backup+read-back: wall %.3fs (tar|zstd %.3fs), cpu %.3fs (tar|zstd %.3fs)\n' \
  "$(col '$1')" "$(col '$4')" "$(col '$2')" "$(col '$5')"
printf 'pairwise medians proxkeep/reference: wall %.3fx (target 1.15), cpu %.3fx (target 1.30)\n' \
  "$(col '$1 / $4')" "$(col '$2 / $5')"
echo "archive: $(du -m "$W"/backups/*.tar.zst | cut -f1) MB   reference: $(du -m "$W/ref.tar.zst" | cut -f1) MB"
echo "peak RSS on the bench tree: $(col '$3') KiB (target 65536)"
r20=$(ours "$W/tiny20k" | cut -d' ' -f3)
r200=$(ours "$W/tiny200k" | cut -d' ' -f3)
echo "peak RSS: ${r20} KiB at 20,000 tiny files, ${r200} KiB at 200,000;" \
  "growth $(( (r200 - r20) * 1024 / 180000 )) bytes per file (target 300)"

# Twenty stub commands of 1 s each (a plain Debian root: its categories list 22 commands; firewall's 2 skipped).
S="$W/stubs"; mkdir -p "$S" "$W/linux/etc"; echo bench > "$W/linux/etc/hostname"
for c in ip lsblk blkid findmnt lvm zpool zfs dpkg apt-mark systemctl uname hostname lspci lscpu df; do
  printf '#!/bin/sh\n/bin/sleep 1\necho stub\n' > "$S/$c"; chmod +x "$S/$c"
done
cat > "$W/cfg-cmd.toml" <<TOML
backup_dir = "$W/backups-cmd"
log_dir = "$W/logs"
lock_file = "$W/lock"
min_free_space = 0
[collect]
skip_categories = ["firewall"]
[commands]
run = "always"
concurrency = 4
TOML
n=$("$P" --config "$W/cfg-cmd.toml" --root "$W/linux" --json backup --dry-run | python3 -c 'import json,sys; print(json.load(sys.stdin)["commands"])')
d=$(PATH="$S:/usr/bin:/bin" measure "$P" --config "$W/cfg-cmd.toml" --root "$W/linux" -q backup | cut -d' ' -f1)
echo "$n stub commands of 1 s, concurrency 4: ${d}s"
