#!/usr/bin/env bash
# Backup, warm backup and restore of a tree of 10,000,000 small files (10,000 directories of 1,000), gumvault and
# restic side by side (restic if installed; each restic step is given at most RESTIC_LIMIT seconds).
#   sudo benches/ten-million-files.sh [gumvault binary]      TEN_WORK=/tmp/ten TEN_FILES=10000000 RESTIC_LIMIT=3600
#                                                             TOOLS="gumvault restic" OUT_MB=20000 WARM=1
# Ten million files of a few hundred bytes each would take 40 GB of 4 KiB blocks, so the tree and each restore
# live on loop-mounted ext4 images with inline_data: a file of under 60 bytes (one line of small-files.py) is
# kept in its inode. Root is needed for the mounts. The tree is made once and kept; each restore gets a freshly
# made file system (deleting ten million files would take longer than the restore). OUT_MB sizes that file
# system (default 2 MB per 1,000 files): restic preallocates every file it restores, a 4 KiB block each, so its
# restore needs about 5 MB per 1,000 files. WARM=0 leaves out the warm backups.
# Output: TSV (tool, step, wall_s, max_rss_kb, status) on stdout; docs/benchmarks.md has the figures.
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
here="$(cd "$(dirname "$0")" && pwd)"
work="${TEN_WORK:-/tmp/ten}"
n="${TEN_FILES:-10000000}"
limit="${RESTIC_LIMIT:-3600}"
tools="${TOOLS:-gumvault restic}"
inodes=$((n + n / 10 + 100000))
out_mb="${OUT_MB:-$((n / 1000 * 2))}"
mkdir -p "$work/tree-mnt" "$work/out-mnt"
# An ext4 image for n small files, mounted at $2 (made and mounted unless it already is).
fs() { # image mountpoint size_mb
  mountpoint -q "$2" && return
  if [ ! -f "$1" ]; then
    truncate -s "$3"M "$1"
    mkfs.ext4 -q -F -O inline_data -N "$inodes" "$1"
  fi
  mount -o loop,noatime "$1" "$2"
}
fs "$work/tree.img" "$work/tree-mnt" $((n / 1000 * 2))
if [ ! -f "$work/tree-mnt/tree.complete" ]; then
  rm -rf "$work/tree-mnt/tree"
  python3 "$here/small-files.py" "$work/tree-mnt/tree" "$n" 1
  touch "$work/tree-mnt/tree.complete"
fi
fresh_out() {
  if mountpoint -q "$work/out-mnt"; then umount "$work/out-mnt"; fi
  rm -f "$work/out.img"
  fs "$work/out.img" "$work/out-mnt" "$out_mb"
}
export GUMVAULT_PASSWORD=bench RESTIC_PASSWORD=bench
step() { # tool step command...
  local tool="$1" name="$2" status=ok; shift 2; sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/$tool-$name.log" 2>&1 || status=failed
  printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$name" $(tail -1 "$work/time") "$status"
}
tree="$work/tree-mnt/tree"
printf 'tool\tstep\twall_s\tmax_rss_kb\tstatus\n'
if [[ " $tools " == *" gumvault "* ]]; then
  rm -rf "$work/repo-ours" "$work/cache-ours"
  export GUMVAULT_REPO="$work/repo-ours" GUMVAULT_CACHE_DIR="$work/cache-ours"
  "$bin" init -q
  step ours backup "$bin" backup -q "$tree"
  [ "${WARM:-1}" = 0 ] || step ours warm_backup "$bin" backup -q "$tree"
  fresh_out
  step ours restore "$bin" restore -q latest --target "$work/out-mnt/ours"
  "$bin" stats > "$work/ours-stats.log" 2>&1 || true
fi
if [[ " $tools " == *" restic "* ]] && command -v restic >/dev/null; then
  rm -rf "$work/repo-restic" "$work/cache-restic"
  r=(restic -r "$work/repo-restic" --cache-dir "$work/cache-restic")
  "${r[@]}" init >/dev/null
  step restic backup timeout "$limit" "${r[@]}" backup -q "$tree"
  [ "${WARM:-1}" = 0 ] || step restic warm_backup timeout "$limit" "${r[@]}" backup -q "$tree"
  fresh_out
  step restic restore timeout "$limit" "${r[@]}" restore latest --target "$work/out-mnt/restic"
fi
if mountpoint -q "$work/out-mnt"; then umount "$work/out-mnt"; fi
rm -f "$work/out.img"
