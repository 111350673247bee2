#!/usr/bin/env bash
# Two builds of proxkeep on the same tree, in the same run: backup (read-back included), verify, extract and
# restore --target. Each pair runs the two builds back to back, in alternating order; the figure is the median
# of the pairwise ratios NEW/OLD (a ratio of two runs seconds apart cancels most of a shared machine's load,
# where best-of or mean figures would measure the load).
# usage: bench/compare.sh OLD_BINARY NEW_BINARY [PAIRS]   (default 7 pairs; needs ~2 GB under /var/tmp)
#        STEPS="restore verify" bench/compare.sh ...   (only these steps; backup always runs once per side first)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 PAIRS=${3:-7}
for t in python3 bc; do command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }; done
W=$(mktemp -d /var/tmp/proxkeep-compare.XXXXXX)
trap 'rm -rf "$W"' EXIT
python3 bench/gen_tree.py "$W/root" >/dev/null
for side in old new; do
  cat >"$W/$side.toml" <<TOML
backup_dir = "$W/$side/backups"
log_dir = "$W/$side/logs"
lock_file = "$W/$side/lock"
min_free_space = 0
[commands]
run = "never"
TOML
done
bin() { if [ "$1" = old ]; then echo "$OLD"; else echo "$NEW"; fi; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
# One timed step of one side; $1 side, $2 step.
step() {
  local side=$1 b cfg; b=$(bin "$side"); cfg="$W/$side.toml"
  case $2 in
    backup) rm -rf "${W:?}/$side/backups" "$W/$side/logs"; secs "$b" --config "$cfg" --root "$W/root" -q backup ;;
    verify) secs "$b" --config "$cfg" -q verify "$(ls "$W/$side"/backups/*.tar.zst)" ;;
    extract) rm -rf "${W:?}/$side/x"; secs "$b" --config "$cfg" -q extract "$(ls "$W/$side"/backups/*.tar.zst)" "$W/$side/x" ;;
    restore) rm -rf "${W:?}/$side/t"; mkdir -p "$W/$side/t"
      secs "$b" --config "$cfg" -q restore "$(ls "$W/$side"/backups/*.tar.zst)" --target "$W/$side/t" --yes --no-safety-backup ;;
  esac
}
echo "tree: $(find "$W/root" -type f | wc -l) files, $(du -sm "$W/root" | cut -f1) MB; $(nproc) CPUs; $PAIRS pairs"
tar -cf - -C "$W/root" . >/dev/null # warm the page cache for both alike
for side in old new; do step $side backup >/dev/null; done
for s in ${STEPS:-backup verify extract restore}; do
  ratios=(); olds=(); news=()
  for i in $(seq "$PAIRS"); do
    if [ $((i % 2)) = 1 ]; then o=$(step old $s); n=$(step new $s); else n=$(step new $s); o=$(step old $s); fi
    olds+=("$o"); news+=("$n"); ratios+=("$(echo "scale=4; $n / $o" | bc)")
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
  printf '%-8s old median %6.3fs  new median %6.3fs  new/old: median %s (pairs %s .. %s)\n' "$s" \
    "$(med "${olds[@]}")" "$(med "${news[@]}")" "$(med "${ratios[@]}")" \
    "$(printf '%s\n' "${ratios[@]}" | sort -n | head -1)" "$(printf '%s\n' "${ratios[@]}" | sort -n | tail -1)"
done
