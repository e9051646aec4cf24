#!/usr/bin/env bash
# Successive pg_dumps through `gumvault run` (a job with a postgres source: pg_dump streamed into the chunker)
# next to restic backing up the same pg_dump from stdin, on a throw-away pgbench cluster shaped like
# ../shared/bench/make-data.sh's (scale 30, text filler, autovacuum off, seeded transactions + VACUUM between
# dumps). Prints one TSV row per tool and round: dump size, bytes added (before compression where the tool says),
# repository growth, wall time, peak RSS.
#   benches/stack-run.sh [gumvault binary]        TXNS=500 ROUNDS=4 SCALE=30 FILLER=text
#   SCALE=200 FILLER=blank ROUNDS=1 TOOLS=gumvault benches/stack-run.sh   # one ~2 GB dump: peak memory
#   TXNS=20000 ORDER=primary-key TOOLS=gumvault benches/stack-run.sh       # busy database, dump in key order
set -euo pipefail
bin="$(realpath "${1:-target/release/gumvault}")"
: "${TXNS:=500}" "${ROUNDS:=4}" "${SCALE:=30}" "${FILLER:=text}" "${TOOLS:=gumvault restic}" "${PGPORT:=54339}"
: "${ORDER:=physical}"   # the postgres source's row order: physical (pg_dump's) or primary-key
work="$(mktemp -d /tmp/stack-run.XXXXXX)"
chmod 755 "$work"   # the postgres user must reach its cluster below it
pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
as_pg() { runuser -u postgres -- "$@"; }
cleanup() { as_pg "$pgbin/pg_ctl" -D "$work/pg/data" stop -m immediate >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/pg" && chown postgres: "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres --auth=trust --no-instructions >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w start \
  -o "-p $PGPORT -k $work/pg -c listen_addresses=127.0.0.1 -c autovacuum=off -c synchronous_commit=off -c fsync=off" >/dev/null
conn=(-h 127.0.0.1 -p "$PGPORT" -U postgres)
"$pgbin/psql" "${conn[@]}" -qc "CREATE DATABASE bench" postgres
"$pgbin/pgbench" "${conn[@]}" -i -s "$SCALE" -q bench >/dev/null 2>&1
if [[ "$FILLER" == text ]]; then
  "$pgbin/psql" "${conn[@]}" -qc "UPDATE pgbench_accounts SET filler = format('user%s@example.com|%s|%s', aid, md5(aid::text), left(md5((aid * 31)::text), 20))" bench
  "$pgbin/psql" "${conn[@]}" -qc 'VACUUM FULL pgbench_accounts' bench
fi
export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/bench" GUMVAULT_PASSWORD=bench RESTIC_PASSWORD=bench
cat > "$work/gumvault.toml" <<TOML
[repository]
url = "$work/gv-repo"
cache_dir = "$work/gv-cache"
[[jobs.db.sources]]
name = "db"
kind = "postgres"
pg_dump = "$pgbin/pg_dump"
order = "$ORDER"
TOML
export GUMVAULT_CONFIG="$work/gumvault.toml"
"$bin" init -q
restic init -q -r "$work/restic-repo" >/dev/null
du_b() { du -sb "$1" | cut -f1; }
printf 'tool\tround\tdump_bytes\tadded_bytes\tadded_pct\trepo_growth_bytes\twall_s\tpeak_rss_kb\n'
for round in $(seq 1 "$ROUNDS"); do
  if (( round > 1 )); then
    "$pgbin/pgbench" "${conn[@]}" -c 1 -j 1 -t "$TXNS" --random-seed=$((1000 + round)) -n bench >/dev/null 2>&1
    "$pgbin/psql" "${conn[@]}" -qc VACUUM bench
  fi
  for tool in $TOOLS; do
    case $tool in
      gumvault)
        before=$(du_b "$work/gv-repo")
        /usr/bin/time -f '%e %M' -o "$work/time" "$bin" run db --json > "$work/out.json"
        read -r wall rss < "$work/time"
        python3 - "$round" "$before" "$(du_b "$work/gv-repo")" "$wall" "$rss" "$work/out.json" <<'PY'
import json, sys
r, before, after, wall, rss, out = sys.argv[1:]
s = json.load(open(out))["summary"]
print(f"gumvault\t{r}\t{s['bytes_read']}\t{s['bytes_added']}\t{100*s['bytes_added']/max(1,s['bytes_read']):.1f}\t{int(after)-int(before)}\t{wall}\t{rss}")
PY
        ;;
      restic)
        before=$(du_b "$work/restic-repo")
        # The same pipeline a cron job would run: pg_dump | restic backup --stdin (both timed, like ours).
        /usr/bin/time -f '%e %M' -o "$work/time" bash -c "'$pgbin/pg_dump' -h 127.0.0.1 -p $PGPORT -U postgres bench | restic -q -r '$work/restic-repo' backup --json --stdin --stdin-filename db.sql" > "$work/restic.json"
        read -r wall rss < "$work/time"
        python3 - "$round" "$before" "$(du_b "$work/restic-repo")" "$wall" "$rss" "$work/restic.json" <<'PY'
import json, sys
r, before, after, wall, rss, out = sys.argv[1:]
s = [json.loads(l) for l in open(out) if '"summary"' in l][-1]
size = s["total_bytes_processed"]
print(f"restic\t{r}\t{size}\t{s['data_added']}\t{100*s['data_added']/max(1,size):.1f}\t{int(after)-int(before)}\t{wall}\t{rss}")
PY
        ;;
    esac
  done
done
