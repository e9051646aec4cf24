#!/usr/bin/env bash
# Backup, prune, check --read-data and restore on a repository of over a million blobs, gumvault next to restic on the same
# content: a tree of 1,000,000 small distinct files (each file is one blob for both tools).
# Usage: benches/million-blobs.sh [path/to/gumvault]      Output: TSV on stdout (tool, step, wall_s, max_rss_kb)
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
work="${MILLION_WORK:-/tmp/million}"
n="${MILLION_FILES:-1000000}"
mkdir -p "$work"
if [ ! -f "$work/tree.complete" ]; then
  rm -rf "$work/tree"
  python3 "$(dirname "$0")/small-files.py" "$work/tree" "$n"
  touch "$work/tree.complete"
fi
export GUMVAULT_PASSWORD=bench RESTIC_PASSWORD=bench
step() { # tool step command...
  local tool="$1" name="$2"; shift 2; sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/$tool-$name.log" 2>&1
  printf '%s\t%s\t%s\t%s\n' "$tool" "$name" $(cat "$work/time")
}
rm -rf "$work/repo-ours" "$work/cache-ours" "$work/repo-restic" "$work/cache-restic"
printf 'tool\tstep\twall_s\tmax_rss_kb\n'
export GUMVAULT_REPO="$work/repo-ours" GUMVAULT_CACHE_DIR="$work/cache-ours"
step ours init "$bin" init
step ours backup "$bin" backup -q "$work/tree"
step ours prune "$bin" prune -q
step ours check_read_data "$bin" check -q --read-data
step ours restore "$bin" restore -q latest --target "$work/out-ours"
rm -rf "$work/out-ours"
"$bin" stats >> "$work/ours-stats.log"
step restic init restic -r "$work/repo-restic" --cache-dir "$work/cache-restic" init
step restic backup restic -r "$work/repo-restic" --cache-dir "$work/cache-restic" backup -q "$work/tree"
step restic prune restic -r "$work/repo-restic" --cache-dir "$work/cache-restic" prune
step restic check_read_data restic -r "$work/repo-restic" --cache-dir "$work/cache-restic" check --read-data
step restic restore restic -r "$work/repo-restic" --cache-dir "$work/cache-restic" restore latest --target "$work/out-restic"
rm -rf "$work/out-restic"
