#!/usr/bin/env bash
# Measures how much each successive pg_dump adds to a repository, per chunker profile: the figures behind the
# default `stream` profile (docs/benchmarks.md). Uses the dumps made by ../shared/bench/make-data.sh.
# Usage: benches/dump-dedup.sh [path/to/gumvault]   (default target/release/gumvault)
set -euo pipefail
bin="${1:-target/release/gumvault}"
data="${BENCH_DATA:-/tmp/bench-data}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GUMVAULT_PASSWORD=bench
printf 'profile\tseries\tdump\tsize_bytes\tadded_bytes\tadded_pct\tstored_bytes\twall_s\n'
for prof in 2K/8K/64K 2K/16K/128K 4K/16K/128K 16K/64K/256K 256K/1M/4M; do
  for series in dumps-light dumps; do
    repo="$work/repo"; rm -rf "$repo" "$work/cache"
    GUMVAULT_REPO="$repo" GUMVAULT_CACHE_DIR="$work/cache" "$bin" init -q --kdf-memory 8 --chunker-profile "p=$prof"
    for i in 1 2 3 4; do
      f="$data/$series/dump$i.sql"
      start=$(date +%s.%N)
      out=$(GUMVAULT_REPO="$repo" GUMVAULT_CACHE_DIR="$work/cache" "$bin" backup --json --chunker p --stdin --stdin-filename db.sql < "$f")
      end=$(date +%s.%N)
      python3 - "$prof" "$series" "$i" "$start" "$end" "$out" <<'PY'
import json, sys
prof, series, i, start, end, out = sys.argv[1:]
s = json.loads(out)["summary"]
print(f"{prof}\t{series}\t{i}\t{s['bytes_read']}\t{s['bytes_added']}\t{100*s['bytes_added']/s['bytes_read']:.1f}\t{s['stored_bytes_added']}\t{float(end)-float(start):.2f}")
PY
    done
  done
done
