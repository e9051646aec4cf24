#!/usr/bin/env bash
# A distant region: backup, restore, check --read-data and sync of a tree (default /tmp/bench-src, the 1.3 GB
# peer corpus) into s3s-fs on 127.0.0.1, directly and through benches/latency-proxy.py (DELAY_MS on every byte
# each way, so each request costs 2 x DELAY_MS more), gumvault and restic side by side (restic if installed).
#   benches/latency.sh [gumvault binary]      SRC=/tmp/bench-src DELAY_MS=80 TOOLS="gumvault restic" OUT=/dev/shm
# PATHS="direct relay distant" adds a path through a second proxy without delay: the proxy's own cost (its CPU,
# the extra hop), so that what the distance costs can be told from what the proxy costs on a small machine.
# Restores go into OUT (default /dev/shm, a tmpfs, when writable): on a disk, creating tens of thousands of files
# right after deleting as many costs ext4 seconds of inode scanning that have nothing to do with the network.
# Output: TSV (tool, path, step, wall_s, max_rss_kb) on stdout; docs/benchmarks.md has the figures.
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
here="$(cd "$(dirname "$0")" && pwd)"
: "${SRC:=/tmp/bench-src}" "${DELAY_MS:=80}" "${TOOLS:=gumvault restic}"
work="$(mktemp -d /tmp/latency-bench.XXXXXX)"
if [ -z "${OUT:-}" ]; then OUT=/tmp; [ -w /dev/shm ] && OUT=/dev/shm; fi
out="$(mktemp -d "$OUT/latency-out.XXXXXX")"
port=$((20000 + RANDOM % 20000)); proxy_port=$((port + 1)); relay_port=$((port + 2))
: "${PATHS:=direct distant}"
mkdir -p "$work/s3/bench"
s3s-fs --host 127.0.0.1 --port "$port" --access-key K --secret-key S "$work/s3" >/dev/null 2>&1 &
s3pid=$!
python3 "$here/latency-proxy.py" "$proxy_port" "$port" "$DELAY_MS" &
proxypid=$!
python3 "$here/latency-proxy.py" "$relay_port" "$port" 0 &
relaypid=$!
trap 'kill $s3pid $proxypid $relaypid 2>/dev/null || true; rm -rf "$work" "$out"' EXIT
for p in "$port" "$proxy_port" "$relay_port"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "nothing listens on port $p (is s3s-fs installed?)" >&2; exit 1; }
done
export GUMVAULT_PASSWORD=bench RESTIC_PASSWORD=bench RESTIC_FROM_PASSWORD=bench AWS_ACCESS_KEY_ID=K AWS_SECRET_ACCESS_KEY=S
step() { # tool path step command...   (a failing step is reported as such and the run goes on)
  local tool="$1" path="$2" name="$3" status=ok; shift 3; sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/$tool-$path-$name.log" 2>&1 \
    || { status=failed; tail -3 "$work/$tool-$path-$name.log" >&2; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$path" "$name" $(tail -1 "$work/time") "$status"
}
# The tree is read once first, so that no step's figure includes reading it from disk (the first backup would).
find "$SRC" -type f -print0 | xargs -0 cat > /dev/null
printf 'tool\tpath\tstep\twall_s\tmax_rss_kb\tstatus\n'
for path in $PATHS; do
  case "$path" in direct) p=$port ;; distant) p=$proxy_port ;; relay) p=$relay_port ;; *) echo "unknown path $path" >&2; exit 2 ;; esac
  url="s3://bench/$path?endpoint=http://127.0.0.1:$p&region=us-east-1"
  copy="s3://bench/$path-copy?endpoint=http://127.0.0.1:$p&region=us-east-1"
  export GUMVAULT_CACHE_DIR="$work/cache-$path"
  "$bin" -r "$url" init -q
  step gumvault "$path" backup "$bin" -r "$url" backup -q "$SRC"
  step gumvault "$path" restore "$bin" -r "$url" restore -q latest --target "$out/$path"
  rm -rf "${out:?}/$path"
  step gumvault "$path" check_read_data "$bin" -r "$url" check -q --read-data
  step gumvault "$path" sync_into "$bin" -r "$url" sync -q --into "$copy"
  if [[ " $TOOLS " == *" restic "* ]] && command -v restic >/dev/null; then
    r="s3:http://127.0.0.1:$p/bench/restic-$path"
    restic -r "$r" --cache-dir "$work/rcache-$path" init >/dev/null
    step restic "$path" backup restic -r "$r" --cache-dir "$work/rcache-$path" backup -q "$SRC"
    step restic "$path" restore restic -r "$r" --cache-dir "$work/rcache-$path" restore latest --target "$out/restic-$path"
    rm -rf "${out:?}/restic-$path"
    step restic "$path" check_read_data restic -r "$r" --cache-dir "$work/rcache-$path" check --read-data
    r2="s3:http://127.0.0.1:$p/bench/restic-$path-copy"
    restic -r "$r2" --cache-dir "$work/rcache-$path" init --from-repo "$r" --copy-chunker-params >/dev/null 2>&1 \
      || restic -r "$r2" init >/dev/null
    step restic "$path" copy \
      restic -r "$r2" --cache-dir "$work/rcache-$path" copy --from-repo "$r"
  fi
done
