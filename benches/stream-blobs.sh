#!/usr/bin/env bash
# A real backup of millions of stream chunks: STREAM_BYTES (default 21 GB, about 2.1 million chunks of ~10 KB) of a
# dump-like stream (benches/dump-like.c: distinct COPY rows, ~3:1 compressible) piped into `backup --stdin`, then
# the same stream again (every chunk known: an incremental backup against the full catalog), `stats`, `check`,
# `prune`, the dump of the snapshot back out and its restore into a directory, each compared with the stream by its
# SHA-256.
#   benches/stream-blobs.sh [gumvault binary]      STREAM_WORK=/tmp/stream STREAM_BYTES=21000000000 STREAM_AGAIN=1
#   STREAM_RESTORE=1
# Output: TSV (tool, step, wall_s, max_rss_kb, status) on stdout; docs/benchmarks.md has the figures.
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
here="$(cd "$(dirname "$0")" && pwd)"
work="${STREAM_WORK:-/tmp/stream}"
bytes="${STREAM_BYTES:-21000000000}"
mkdir -p "$work"
cc -O2 -o "$work/dump-like" "$here/dump-like.c"
export GUMVAULT_PASSWORD=bench GUMVAULT_REPO="$work/repo" GUMVAULT_CACHE_DIR="$work/cache"
rm -rf "$work/repo" "$work/cache"
"$bin" init -q
step() { # name command (a shell pipeline)
  local name="$1" status=ok; shift; sync
  /usr/bin/time -f "%e %M" -o "$work/time" bash -c "$1" > "$work/$name.log" 2>&1 || status=failed
  printf 'ours\t%s\t%s\t%s\t%s\n' "$name" $(tail -1 "$work/time") "$status"
}
printf 'tool\tstep\twall_s\tmax_rss_kb\tstatus\n'
# /usr/bin/time measures the pipeline's shell, and so its largest child: gumvault, not the generator or the
# hashing (a few MB each).
# The stream's hash is taken on the way in (tee), for the comparison with the dump at the end.
step backup "'$work/dump-like' $bytes | tee >(sha256sum > '$work/stream.sha256') | '$bin' backup -q --stdin --stdin-filename events.sql"
if [ "${STREAM_AGAIN:-1}" = 1 ]; then
  step backup_again "'$work/dump-like' $bytes | '$bin' backup -q --stdin --stdin-filename events.sql"
fi
step stats "'$bin' stats"
step check "'$bin' check -q"
step prune "'$bin' prune -q"
step dump "'$bin' dump latest /events.sql | sha256sum > '$work/restored.sha256'"
cmp -s "$work/stream.sha256" "$work/restored.sha256" || { echo "the dump differs from the stream" >&2; exit 1; }
if [ "${STREAM_RESTORE:-1}" = 1 ]; then # the file restored into a directory (needs STREAM_BYTES of free disk)
  rm -rf "$work/restored"
  step restore "'$bin' restore -q latest --target '$work/restored'"
  sha256sum < "$work/restored/events.sql" > "$work/restored.sha256"
  rm -rf "$work/restored"
  cmp -s "$work/stream.sha256" "$work/restored.sha256" || { echo "the restored file differs from the stream" >&2; exit 1; }
fi
cat "$work/stats.log" >&2
