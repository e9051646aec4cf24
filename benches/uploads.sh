#!/usr/bin/env bash
# Upload concurrency (GUMVAULT_STORAGE_UPLOADS) against an S3 server whose connections are capped at RATE MB/s
# each (benches/throttle-proxy.py in front of s3s-fs on 127.0.0.1), as a distant region's are. A cold backup of
# SIZE_MB (10^6 bytes) of incompressible data per setting; prints wall time, throughput and peak RSS (docs/benchmarks.md).
#   benches/uploads.sh [gumvault binary]     RATE=25 SIZE_MB=400 UPLOADS="1 2 4 8" RUNS=2
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
here="$(cd "$(dirname "$0")" && pwd)"
: "${RATE:=25}" "${SIZE_MB:=400}" "${UPLOADS:=1 2 4 8}" "${RUNS:=2}"
work="$(mktemp -d /tmp/uploads-bench.XXXXXX)"
port=$((20000 + RANDOM % 20000)); proxy_port=$((port + 1))
mkdir -p "$work/s3/bench" "$work/src"
s3s-fs --host 127.0.0.1 --port "$port" --access-key K --secret-key S "$work/s3" >/dev/null 2>&1 &
s3pid=$!
python3 "$here/throttle-proxy.py" "$proxy_port" "$port" "$RATE" &
proxypid=$!
trap 'kill $s3pid $proxypid 2>/dev/null || true; rm -rf "$work"' EXIT
head -c "$((SIZE_MB * 1000000))" /dev/urandom > "$work/src/data.bin"
for p in "$port" "$proxy_port"; do   # both servers up, or stop here
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "nothing listens on port $p (is s3s-fs installed?)" >&2; exit 1; }
done
export GUMVAULT_PASSWORD=bench AWS_ACCESS_KEY_ID=K AWS_SECRET_ACCESS_KEY=S
s3="s3://bench/repo?endpoint=http://127.0.0.1:$proxy_port&region=us-east-1"
printf 'uploads\trun\twall_s\tMB_per_s\tpeak_rss_kb\n'
for run in $(seq 1 "$RUNS"); do
  for n in $UPLOADS; do
    rm -rf "$work/cache" "$work/s3/bench/repo"
    GUMVAULT_CACHE_DIR="$work/cache" "$bin" -r "$s3" init -q --kdf-memory 8
    /usr/bin/time -f '%e %M' -o "$work/time" env GUMVAULT_CACHE_DIR="$work/cache" GUMVAULT_STORAGE_UPLOADS="$n" \
      "$bin" -r "$s3" backup -q "$work/src"
    read -r wall rss < "$work/time"
    printf '%s\t%s\t%s\t%.0f\t%s\n' "$n" "$run" "$wall" "$(echo "$SIZE_MB / $wall" | bc -l)" "$rss"
  done
done
