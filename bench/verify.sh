#!/usr/bin/env bash
# Benchmark for issue 3 (not a test):
#  1. `proxkeep verify ARCHIVE` against `zstd -dc ARCHIVE | sha256sum` on the same archive, in the same run
#     (target: verify throughput >= 0.8x the reference), on the ~300 MB bench tree of bench/gen_tree.py;
#  2. `proxkeep list` over 100 archives of ~50 MB each (copies of one archive of incompressible files under
#     distinct names; target <= 1 s), with 99 of them never verified, then with all of them verified.
# usage: bench/verify.sh [WORKDIR]   (default /tmp/proxkeep-bench-verify; needs ~5.5 GB)
#   RUNS=N   timed runs of each measurement (default 5; best and median are printed)
#   COLD=1   also time `list` from a cold page cache (drops the whole system's page cache: root only)
# Uses hyperfine when it is installed, else `date` around repeated runs.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/proxkeep-bench-verify}
RUNS=${RUNS:-5}
cargo build --release -q
P=$PWD/target/release/proxkeep
rm -rf "$W"; mkdir -p "$W"

cfg() { # cfg NAME BACKUP_DIR
  cat > "$W/$1.toml" <<TOML
backup_dir = "$2"
log_dir = "$W/logs"
lock_file = "$W/lock"
min_free_space = 0
[commands]
run = "never"
TOML
}

# Time a command line RUNS times (output discarded); prints "best median" in seconds.
times() {
  if command -v hyperfine > /dev/null; then
    hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$W/hf.json" "$1" > /dev/null 2>&1 ||
      hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$W/hf.json" "$1" > /dev/null
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]["times"]; r.sort(); print("%.3f %.3f" % (r[0], r[len(r)//2]))' "$W/hf.json"
  else
    local all=() s e
    sh -c "$1" > /dev/null 2>&1 || true # warm-up
    for _ in $(seq "$RUNS"); do
      s=$(date +%s.%N); sh -c "$1" > /dev/null 2>&1 || true; e=$(date +%s.%N)
      all+=("$(echo "$e - $s" | bc)")
    done
    printf '%s\n' "${all[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f %.3f\n", a[1], a[int((NR + 1) / 2)] }'
  fi
}

# --- 1. verify throughput -----------------------------------------------------------------------------------
python3 bench/gen_tree.py "$W/root" > /dev/null
cfg big "$W/backups"
PROXKEEP_NOW=2026-01-01T00:00:00Z "$P" --config "$W/big.toml" --root "$W/root" -q backup
A=$(ls "$W"/backups/*.tar.zst)
tar_mb=$(zstd -dc "$A" | wc -c | awk '{ printf "%.1f", $1 / 1e6 }')
zst_mb=$(stat -c %s "$A" | awk '{ printf "%.1f", $1 / 1e6 }')
cat "$A" > /dev/null # both sides read it from the page cache
read -r ob om < <(times "$P --config $W/big.toml verify $A")
read -r rb rm < <(times "zstd -dc $A | sha256sum")
read -r zb zm < <(times "zstd -dc $A")
rss=$(/usr/bin/time -f %M "$P" --config "$W/big.toml" verify "$A" 2>&1 > /dev/null | tail -1)
echo "archive: $zst_mb MB zstd, $tar_mb MB of tar ($(find "$W/root/etc/pve" -type f | wc -l) files); $(nproc) CPUs"
echo "proxkeep verify:         best ${ob}s  median ${om}s  = $(echo "scale=0; $tar_mb / $ob" | bc) MB/s of tar (peak RSS ${rss} KiB)"
echo "zstd -dc | sha256sum:    best ${rb}s  median ${rm}s  = $(echo "scale=0; $tar_mb / $rb" | bc) MB/s of tar"
echo "(zstd -dc alone:        best ${zb}s  median ${zm}s: sha256sum is the slower half of the reference)"
echo "verify throughput / reference: $(echo "scale=2; $rb / $ob" | bc) (best), $(echo "scale=2; $rm / $om" | bc) (median); target >= 0.8"

# --- 2. list over 100 archives of ~50 MB ----------------------------------------------------------------------
python3 bench/gen_tree.py "$W/root50" --mb 50 --files 200 --incompressible > /dev/null
cfg list "$W/b50"
PROXKEEP_NOW=2026-01-01T00:00:00Z "$P" --config "$W/list.toml" --root "$W/root50" -q backup
B=$(ls "$W"/b50/*.tar.zst)
for i in $(seq 1 99); do
  cp "$B" "$W/b50/bench-pve-$(date -u -d "2026-01-01 00:00:00 UTC - $i hours" +%Y%m%dT%H%M%SZ).tar.zst"
done
n=$(ls "$W"/b50/*.tar.zst | wc -l)
each=$(stat -c %s "$B" | awk '{ printf "%.1f", $1 / 1e6 }')
L="$P --config $W/list.toml --root $W/root50 list"
if [ "${COLD:-0}" = 1 ]; then
  sync; echo 3 > /proc/sys/vm/drop_caches
  s=$(date +%s.%N); $L > /dev/null; e=$(date +%s.%N)
  echo "list, $n archives of $each MB, 99 never verified, cold page cache: $(echo "$e - $s" | bc | xargs printf %.3f)s"
fi
read -r lb lm < <(times "$L")
echo "list, $n archives of $each MB, 99 never verified:  best ${lb}s  median ${lm}s  (target <= 1 s)"
s=$(date +%s.%N); "$P" --config "$W/list.toml" verify --all > /dev/null; e=$(date +%s.%N)
echo "verify --all over them: $(echo "$e - $s" | bc | xargs printf %.3f)s"
if [ "${COLD:-0}" = 1 ]; then
  sync; echo 3 > /proc/sys/vm/drop_caches
  s=$(date +%s.%N); $L > /dev/null; e=$(date +%s.%N)
  echo "list, all verified, cold page cache: $(echo "$e - $s" | bc | xargs printf %.3f)s"
fi
read -r lb lm < <(times "$L")
echo "list, $n archives of $each MB, all verified:      best ${lb}s  median ${lm}s"
$L | head -3
