#!/usr/bin/env bash
# WAL archiving side by side: gumvault wal-push and pgBackRest archive-push (Debian's 2.45, synchronous and
# asynchronous) as the archive_command of the same PostgreSQL 15 cluster, one after the other.
#
#   scripts/bench-wal-push.sh [SWITCHES] [PGBENCH_SECONDS]      (as root; defaults 30 and 60)
#
# For each archiver:
#   latency  SWITCHES times: one row inserted, pg_switch_wal(), the time until pg_stat_archiver reports that
#            segment archived (segment closed -> durable in the repository, PostgreSQL's own round trip);
#   lag      pgbench at full speed (-c 2 -j 2, scale 10) for PGBENCH_SECONDS: the WAL rate it makes and the
#            segments waiting in archive_status (sampled every second), then the time to drain them.
# Needs a release build (target/release/gumvault or $GUMVAULT), postgresql-15, pgbackrest.
set -euo pipefail
SWITCHES=${1:-30}
BUSY=${2:-60}
GV=${GUMVAULT:-$(pwd)/target/release/gumvault}
BIN=/usr/lib/postgresql/15/bin
DIR=${BENCH_DIR:-/tmp/gumvault-bench-wal}
PORT=55489
as_pg() { runuser -u postgres -- "$@"; }
sql() { as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -d postgres -Atc "$1"; }
now() { date +%s.%N; }

rm -rf "$DIR"; mkdir -p "$DIR"; chown postgres: "$DIR"
as_pg mkdir -p "$DIR/pgbr/repo" "$DIR/pgbr/log" "$DIR/pgbr/spool"
echo -n "bench password" > "$DIR/password"; chown postgres: "$DIR/password"; chmod 600 "$DIR/password"
cat > "$DIR/gumvault.toml" <<EOF
[repository]
url = "$DIR/gv-repo"
password = "file:$DIR/password"
cache_dir = "$DIR/gv-cache"
EOF
cat > "$DIR/pgbackrest.conf" <<EOF
[global]
repo1-path=$DIR/pgbr/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench password for pgbackrest
log-path=$DIR/pgbr/log
lock-path=$DIR/pgbr
spool-path=$DIR/pgbr/spool
process-max=2
[bench]
pg1-path=$DIR/data
pg1-port=$PORT
pg1-socket-path=$DIR
EOF
chown postgres: "$DIR/gumvault.toml" "$DIR/pgbackrest.conf"
as_pg "$GV" --config "$DIR/gumvault.toml" init --kdf-memory 64 > /dev/null
as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --no-sync > /dev/null
cat >> "$DIR/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
archive_mode = on
archive_command = '/bin/true'
max_wal_size = 4GB
EOF
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w start > /dev/null
trap 'as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop > /dev/null 2>&1 || true' EXIT
as_pg env PGBACKREST_CONFIG="$DIR/pgbackrest.conf" pgbackrest --stanza=bench stanza-create > /dev/null
as_pg "$BIN/pgbench" -h "$DIR" -p "$PORT" -i -q -s 10 postgres > /dev/null 2>&1

use_archiver() { # COMMAND: set archive_command and wait until nothing is waiting
  sql "alter system set archive_command = '$1'" > /dev/null
  sql "select pg_reload_conf()" > /dev/null
  sql "select pg_switch_wal()" > /dev/null
  drain
}
ready() { sql "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'"; }
drain() { until [ "$(ready)" = 0 ]; do sleep 0.05; done; }

measure() { # LABEL
  local label=$1 total=0 worst=0 t0 t1 seg ms
  for _ in $(seq "$SWITCHES"); do
    sql "create table if not exists bench_switch (i int); insert into bench_switch values (1)" > /dev/null
    t0=$(now)
    seg=$(sql "select pg_walfile_name(pg_switch_wal())")
    until [ "$(sql "select coalesce(last_archived_wal, '') >= '$seg' from pg_stat_archiver")" = t ]; do sleep 0.005; done
    t1=$(now)
    ms=$(python3 -c "print(round(($t1 - $t0) * 1000))")
    total=$(( total + ms )); worst=$(( ms > worst ? ms : worst ))
  done
  echo "$label latency_ms mean=$(( total / SWITCHES )) max=$worst (n=$SWITCHES, includes the 5 ms polling)" | tee -a "$DIR/results"
  local start_lsn max=0 sum=0 n=0 r t_end t_drained wal
  start_lsn=$(sql "select pg_current_wal_lsn()")
  as_pg "$BIN/pgbench" -h "$DIR" -p "$PORT" -n -c 2 -j 2 -T "$BUSY" postgres > "$DIR/pgbench.$label" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    r=$(ready); max=$(( r > max ? r : max )); sum=$(( sum + r )); n=$(( n + 1 )); sleep 1
  done
  wait "$pid"
  t_end=$(now)
  wal=$(sql "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$start_lsn')::bigint")
  sql "select pg_switch_wal()" > /dev/null
  drain
  t_drained=$(now)
  echo "$label lag tps=$(awk '/^tps/ {print int($3)}' "$DIR/pgbench.$label") wal_mib_per_s=$(python3 -c "print(round($wal / $BUSY / 1048576, 2))") waiting_segments max=$max mean=$(python3 -c "print(round($sum / max($n, 1), 2))") drained_after_s=$(python3 -c "print(round($t_drained - $t_end, 1))")" | tee -a "$DIR/results"
}

use_archiver "$GV --config $DIR/gumvault.toml wal-push %p"
measure gumvault
use_archiver "pgbackrest --config=$DIR/pgbackrest.conf --stanza=bench archive-push %p"
measure pgbackrest_sync
use_archiver "pgbackrest --config=$DIR/pgbackrest.conf --stanza=bench --archive-async archive-push %p"
measure pgbackrest_async
echo "stored: gumvault wal/ $(du -sb "$DIR/gv-repo/wal" | cut -f1) bytes, pgBackRest archive $(du -sb "$DIR/pgbr/repo/archive" | cut -f1) bytes" | tee -a "$DIR/results"
echo "--- results in $DIR/results"
