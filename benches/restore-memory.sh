#!/usr/bin/env bash
# Restore's time and peak memory: a few large files in 32 KiB chunks (the shape of a PostgreSQL base backup,
# `pages` chunker profile), half-compressible (big) and page-like and highly compressible (pages), and a tree of many
# small files (small), each restored RESTORE_RUNS times into an empty directory. Memory must not grow with the size of the files or the number of them.
# Usage: benches/restore-memory.sh [path/to/gumvault]   (RAYON_NUM_THREADS=16 imitates a 16-core machine)
# Env: RESTORE_WORK (/tmp/restore-mem), RESTORE_FILES (200000), RESTORE_BIG_MB (1536), RESTORE_RUNS (2)
# Output: TSV on stdout (case, run, wall_s, max_rss_kb)
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
work="${RESTORE_WORK:-/tmp/restore-mem}"
n="${RESTORE_FILES:-200000}"
big_mb="${RESTORE_BIG_MB:-1536}"
runs="${RESTORE_RUNS:-2}"
mkdir -p "$work"
if [ ! -f "$work/data.complete" ]; then
  rm -rf "$work/big" "$work/pages" "$work/small"
  python3 - "$work" "$n" "$big_mb" <<'PY'
import os, sys
work, n, big_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{work}/big")
blk = 1 << 16
for k, part in enumerate([8, 5, 3]):
    size = (big_mb << 20) * part // 16
    with open(f"{work}/big/rel{k}", "wb") as f:
        w = 0
        while w < size:
            t = (b"row %d some text payload " % w) * ((blk // 2) // 30)
            b = (os.urandom(blk // 2) + t)[:blk]
            f.write(b + b"\0" * (blk - len(b)))
            w += blk
os.makedirs(f"{work}/pages")
for k, part in enumerate([2, 1]):
    size = (big_mb << 20) * part // 3
    with open(f"{work}/pages/{16384 + k}", "wb") as f:
        w = 0
        while w < size:
            rows = b"".join(b"%10d|%5d|%12d|%84s\n" % (w // 8192 * 60 + i, i % 100, 0, b"") for i in range(60))
            page = (os.urandom(200) + rows)[:8192]
            f.write(page + b"\0" * (8192 - len(page)))
            w += 8192
PY
  python3 "$(dirname "$0")/small-files.py" "$work/small" "$n"
  touch "$work/data.complete"
fi
export GUMVAULT_PASSWORD=bench
repo() { # case: the repository of one case, made once
  local c="$1"
  if [ ! -f "$work/repo-$c.complete" ]; then
    rm -rf "$work/repo-$c" "$work/cache-$c"
    local profile=()
    [ "$c" != small ] && profile=(--chunker-profile files=8K/32K/256K)
    GUMVAULT_REPO="$work/repo-$c" GUMVAULT_CACHE_DIR="$work/cache-$c" "$bin" init "${profile[@]}" > /dev/null
    GUMVAULT_REPO="$work/repo-$c" GUMVAULT_CACHE_DIR="$work/cache-$c" "$bin" backup -q "$work/$c"
    touch "$work/repo-$c.complete"
  fi
}
printf 'case\trun\twall_s\tmax_rss_kb\n'
for c in big pages small; do
  repo "$c"
  for r in $(seq 1 "$runs"); do
    rm -rf "$work/out"; sync
    GUMVAULT_REPO="$work/repo-$c" GUMVAULT_CACHE_DIR="$work/cache-$c" \
      /usr/bin/time -f "%e %M" -o "$work/time" "$bin" restore -q latest --target "$work/out"
    printf '%s\t%s\t%s\t%s\n' "$c" "$r" $(cat "$work/time")
  done
done
rm -rf "$work/out"
