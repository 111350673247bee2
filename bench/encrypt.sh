#!/usr/bin/env bash
# Encryption overhead (issue 6; not a test): `proxkeep backup` (zstd 3, read-back included) of the bench tree
# as a plain archive and age-encrypted to one X25519 recipient, alternating, in the same run. Target: the
# encrypted backup takes ≤ 1.10× the plain one. (Passphrase mode adds scrypt's fixed ~1 s per run on top, by
# design of the format; it does not grow with the tree.)
#
# Measured 2026-11-28 (2 cores, idle, 20k files / 335 MB, median of 5): plain 1.262 s, age 1.278 s: 1.01×.
#
# usage: bench/encrypt.sh [RUNS]     (default 5; prints the median of each)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
cargo build --release --locked -q
P="${CARGO_TARGET_DIR:-$PWD/target}/release/proxkeep"
W=$(mktemp -d /var/tmp/proxkeep-bench-enc.XXXXXX)
trap 'rm -rf "$W"' EXIT
python3 bench/gen_tree.py "$W/root" >/dev/null
"$P" key generate --out "$W/key.txt" > "$W/recipient" 2>/dev/null
for mode in plain age; do
  cat > "$W/$mode.toml" <<TOML
backup_dir = "$W/backups-$mode"
log_dir = "$W/logs"
lock_file = "$W/lock"
min_free_space = 0
[compression]
algorithm = "zstd"
level = 3
[commands]
run = "never"
TOML
done
echo "[encryption]" >> "$W/age.toml"
echo "recipients = [\"$(cat "$W/recipient")\"]" >> "$W/age.toml"
sync
tar -cf - -C "$W/root" . > /dev/null     # warm the page cache for both alike

t() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
plain=(); age=()
for i in $(seq "$RUNS"); do
  rm -rf "$W/backups-plain" "$W/backups-age" "$W/logs"
  if (( i % 2 )); then order=(plain age); else order=(age plain); fi
  for m in "${order[@]}"; do
    d=$(t "$P" --config "$W/$m.toml" --root "$W/root" -q backup)
    if [ "$m" = plain ]; then plain+=("$d"); else age+=("$d"); fi
  done
done
p=$(printf '%s\n' "${plain[@]}" | median); a=$(printf '%s\n' "${age[@]}" | median)
echo "tree: $(find "$W/root" -type f | wc -l) files, $(du -sm "$W/root" | cut -f1) MB; $(nproc) cores"
echo "plain   median ${p}s  runs: ${plain[*]}"
echo "age     median ${a}s  runs: ${age[*]}"
echo "ratio   $(echo "scale=3; $a / $p" | bc)   (target ≤ 1.10)"
echo "sizes   plain $(du -k "$W"/backups-plain/*.tar.zst | cut -f1) KiB, age $(du -k "$W"/backups-age/*.age | cut -f1) KiB"
"$P" --config "$W/age.toml" --root "$W/root" -q -i "$W/key.txt" verify >/dev/null && echo "encrypted archive verifies with the key"
