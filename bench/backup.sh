#!/usr/bin/env bash
# Benchmark for issue 2 (not a test): proxkeep backup (read-back included) against
# `tar -cf - | zstd -3 -T0 -o A && zstd -t A` on the same tree, in the same run; peak RSS on two tree sizes;
# twenty 1-second stub commands.
# usage: bench/backup.sh [WORKDIR]   (default /tmp/proxkeep-bench; needs ~1.5 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/proxkeep-bench}
RUNS=${RUNS:-3}
cargo build --release -q
P=$PWD/target/release/proxkeep
rm -rf "$W"; mkdir -p "$W"
python3 bench/gen_tree.py "$W/root" >/dev/null
python3 bench/gen_tree.py "$W/root-small" --files 5000 --mb 75 >/dev/null
cat > "$W/cfg.toml" <<TOML
backup_dir = "$W/backups"
log_dir = "$W/logs"
lock_file = "$W/lock"
min_free_space = 0
[commands]
run = "never"
TOML
sync
# Warm the page cache for both sides alike.
tar -cf - -C "$W/root" . > /dev/null

t() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
best() { sort -n | head -1; }

ours=(); ref=()
for i in $(seq "$RUNS"); do
  rm -rf "$W/backups" "$W/logs" "$W/ref.tar.zst"
  ref+=("$(t sh -c "tar -cf - -C '$W/root' . | zstd -q -3 -T0 -o '$W/ref.tar.zst' && zstd -q -t '$W/ref.tar.zst'")")
  ours+=("$(t "$P" --config "$W/cfg.toml" --root "$W/root" -q backup)")
done
o=$(printf '%s\n' "${ours[@]}" | best); r=$(printf '%s\n' "${ref[@]}" | best)
echo "tree: $(find "$W/root/etc/pve" -type f | wc -l) files, $(du -sm "$W/root/etc/pve" | cut -f1) MB"
echo "backup+read-back (best of $RUNS): ${o}s   tar|zstd -3 -T0 + zstd -t: ${r}s   ratio $(echo "scale=3; $o / $r" | bc)"
echo "archive: $(du -m "$W"/backups/*.tar.zst | cut -f1) MB   reference: $(du -m "$W/ref.tar.zst" | cut -f1) MB"

rss() { /usr/bin/time -f %M "$P" --config "$W/cfg.toml" --root "$1" -q backup 2>&1 >/dev/null | tail -1; }
rm -rf "$W/backups" "$W/logs"
echo "peak RSS: $(rss "$W/root-small") KiB (75 MB tree), $(rss "$W/root") KiB (300 MB tree)"

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
d=$(PATH="$S:/usr/bin:/bin" t "$P" --config "$W/cfg-cmd.toml" --root "$W/linux" -q backup)
echo "$n stub commands of 1 s, concurrency 4: ${d}s"
