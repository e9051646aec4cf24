#!/usr/bin/env bash
# Memory and time of every command on a repository of many blobs (default 20 million), made by the test-only
# generator benches/gen_repo.rs (real packs, index segments, trees and a snapshot written through the library).
# Usage: benches/scale.sh [path/to/gumvault]   (SCALE_BLOBS, SCALE_WORK override the size and the work dir;
# SCALE_RESTORE=0 leaves out the restore of the generated snapshot)
# Output: TSV on stdout (step, wall_s, max_rss_kb); run from the repository's top level.
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
n="${SCALE_BLOBS:-20000000}"
work="${SCALE_WORK:-/tmp/scale}"
rm -rf "$work"; mkdir -p "$work/small"
export GUMVAULT_REPO="$work/repo" GUMVAULT_CACHE_DIR="$work/cache" GUMVAULT_PASSWORD=bench
step() { # name command...
  local name="$1"; shift; sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
  printf '%s\t%s\t%s\n' "$name" $(cat "$work/time")
}
printf 'step\twall_s\tmax_rss_kb\n'
"$bin" init -q
step generate cargo bench -q --bench gen_repo -- "$n"
id=$(awk '/^snapshot/ {print $2}' "$work/generate.log")
du -sb "$work/repo" | awk '{printf "# repository: %.0f bytes\n", $1}' >&2
rm -rf "$work/cache"
step snapshots_fresh_cache "$bin" snapshots
step catalog_rebuild "$bin" catalog rebuild
python3 - "$work/small" <<'PY'
import os, sys
for i in range(2000):
    with open(os.path.join(sys.argv[1], f"f{i}"), "wb") as f:
        f.write(os.urandom(4096))
PY
step backup_new_files "$bin" backup -q "$work/small"
for i in $(seq 0 99); do head -c 4096 /dev/urandom > "$work/small/f$i"; done
step backup_incremental "$bin" backup -q "$work/small"
step forget "$bin" forget -q --keep-last 10
step prune "$bin" prune -q
step check "$bin" check -q
step check_read_data "$bin" check -q --read-data
step prune_budget_256MiB "$bin" --memory-budget 256MiB prune -q
step check_budget_256MiB "$bin" --memory-budget 256MiB check -q
if [ "${SCALE_RESTORE:-1}" = 1 ]; then
  step restore "$bin" restore -q "$id" --target "$work/out"
  du -sb "$work/out" | awk '{printf "# restored: %.0f bytes\n", $1}' >&2
fi
