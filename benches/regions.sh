#!/usr/bin/env bash
# Backup throughput with one region against two (docs/benchmarks.md): a cold backup of the FILES corpus
# (../shared/bench/make-data.sh) into (1) one local directory, (2) two local directories, (3) a local directory
# plus an S3-compatible server (s3s-fs) on 127.0.0.1. Prints wall time and peak RSS per setup and run.
#   benches/regions.sh [gumvault binary]     RUNS=2 SRC=/tmp/bench-data/files
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
: "${RUNS:=2}" "${SRC:=${BENCH_DATA:-/tmp/bench-data}/files}"
work="$(mktemp -d /tmp/regions-bench.XXXXXX)"
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/s3/bench"
s3s-fs --host 127.0.0.1 --port "$port" --access-key K --secret-key S "$work/s3" >/dev/null 2>&1 &
s3pid=$!
trap 'kill $s3pid 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 0.5
export GUMVAULT_PASSWORD=bench AWS_ACCESS_KEY_ID=K AWS_SECRET_ACCESS_KEY=S
s3="s3://bench/repo?endpoint=http://127.0.0.1:$port&region=us-east-1"
printf 'setup\trun\twall_s\tpeak_rss_kb\trepo_bytes_per_region\n'
for run in $(seq 1 "$RUNS"); do
  for setup in one-dir two-dirs dir+s3; do
    rm -rf "$work/a" "$work/b" "$work/cache" "$work/s3/bench/repo"
    case $setup in
      one-dir) regions=(-r "$work/a") ;;
      two-dirs) regions=(--region "a=$work/a" --region "b=$work/b") ;;
      dir+s3) regions=(--region "a=$work/a" --region "s3=$s3") ;;
    esac
    GUMVAULT_CACHE_DIR="$work/cache" "$bin" "${regions[@]}" init -q --kdf-memory 8
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f '%e %M' -o "$work/time" env GUMVAULT_CACHE_DIR="$work/cache" "$bin" -r "$work/a" backup -q "$SRC"
    read -r wall rss < "$work/time"
    printf '%s\t%s\t%s\t%s\t%s\n' "$setup" "$run" "$wall" "$rss" "$(du -sb "$work/a" | cut -f1)"
  done
done
