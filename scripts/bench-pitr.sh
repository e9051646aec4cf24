#!/usr/bin/env bash
# Physical backups side by side: gumvault (postgres-physical source + wal-push) and pgBackRest (Debian's 2.45) on
# the same pgbench cluster. Full backup time, size and peak memory; a second backup after pgbench activity; a
# restore to a point in time until the recovered server answers as a primary.
#
#   scripts/bench-pitr.sh [SCALE] [PGBENCH_SECONDS] [LAG_SECONDS]   (as root; defaults 100, 300 and 120)
#
# First, with gumvault's wal-push alone as the archive_command, pgbench at full speed for LAG_SECONDS: the WAL
# rate it makes and the archive lag (segments waiting in archive_status, sampled every second).
#
# Needs: a release build (target/release/gumvault or $GUMVAULT), Debian's postgresql-15 and pgbackrest, /usr/bin/time.
# Everything runs as the postgres OS user in a fresh directory ($BENCH_DIR, default /tmp/gumvault-bench-pitr).
set -euo pipefail
SCALE=${1:-100}
SECONDS_BUSY=${2:-300}
LAG_SECONDS=${3:-120}
GV=${GUMVAULT:-$(pwd)/target/release/gumvault}
BIN=/usr/lib/postgresql/15/bin
DIR=${BENCH_DIR:-/tmp/gumvault-bench-pitr}
PORT=55499
as_pg() { runuser -u postgres -- "$@"; }
timed() { # timed LABEL CMD...: wall seconds and peak RSS (KiB) into $DIR/results
  local label=$1; shift
  as_pg /usr/bin/time -v -o "$DIR/time.$label" "$@" > "$DIR/out.$label" 2>&1 || { cat "$DIR/out.$label"; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$DIR/time.$label")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$DIR/time.$label")
  echo "$label wall=$wall peak_rss_kib=$rss" | tee -a "$DIR/results"
}
size() { du -sb "$1" | cut -f1; }
wait_promoted() { # wait_promoted PORT
  until [ "$(as_pg "$BIN/psql" -h "$DIR" -p "$1" -d postgres -Atc 'select pg_is_in_recovery()' 2>/dev/null)" = f ]; do
    sleep 0.1
  done
}

rm -rf "$DIR"; mkdir -p "$DIR"; chown postgres: "$DIR"
as_pg mkdir -p "$DIR/pgbr/repo" "$DIR/pgbr/log" "$DIR/pgbr/spool"
echo -n "bench password" > "$DIR/password"; chown postgres: "$DIR/password"; chmod 600 "$DIR/password"
cat > "$DIR/gumvault.toml" <<EOF
[repository]
url = "$DIR/gv-repo"
password = "file:$DIR/password"
[[jobs.bench.sources]]
name = "pg"
kind = "postgres-physical"
url = "postgres://postgres@127.0.0.1:$PORT/postgres"
pg_basebackup = "$BIN/pg_basebackup"
wal = "archive"
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
start-fast=y
archive-async=n
[bench]
pg1-path=$DIR/data
pg1-port=$PORT
pg1-socket-path=$DIR
EOF
chown postgres: "$DIR/gumvault.toml" "$DIR/pgbackrest.conf"
export PGBACKREST_CONFIG=$DIR/pgbackrest.conf
export GUMVAULT_CACHE_DIR=$DIR/gv-cache
as_pg "$GV" --config "$DIR/gumvault.toml" init --kdf-memory 64 > /dev/null
as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --no-sync > /dev/null
cat >> "$DIR/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
archive_mode = on
archive_command = '$GV --config $DIR/gumvault.toml wal-push %p && pgbackrest --config=$DIR/pgbackrest.conf --stanza=bench archive-push %p'
archive_timeout = 60s
max_wal_size = 4GB
shared_buffers = 512MB
EOF
as_pg env GUMVAULT_CACHE_DIR="$DIR/gv-cache-archiver" PGBACKREST_CONFIG="$PGBACKREST_CONFIG" \
  "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w start > /dev/null
as_pg pgbackrest --stanza=bench stanza-create > /dev/null
echo "pgbench -i -s $SCALE" | tee -a "$DIR/results"
as_pg "$BIN/pgbench" -h "$DIR" -p "$PORT" -i -q -s "$SCALE" postgres > /dev/null 2>&1
as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -d postgres -Atc "checkpoint; select pg_switch_wal()" > /dev/null
echo "database size: $(as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -d postgres -Atc "select pg_database_size('postgres')")" | tee -a "$DIR/results"

# WAL rate and archive lag with wal-push alone archiving, pgbench as fast as it goes (after the WAL of
# pgbench -i has been archived: its backlog is not lag).
sql() { as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -d postgres -Atc "$1"; }
until [ "$(sql "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'")" = 0 ]; do sleep 0.2; done
sql "alter system set archive_command = '$GV --config $DIR/gumvault.toml wal-push %p'" > /dev/null
sql "select pg_reload_conf()" > /dev/null
start_lsn=$(sql "select pg_current_wal_lsn()")
as_pg "$BIN/pgbench" -h "$DIR" -p "$PORT" -n -c 2 -j 2 -T "$LAG_SECONDS" postgres > "$DIR/pgbench-lag.out" 2>&1 &
bench_pid=$!
max_ready=0; samples=0; sum_ready=0
while kill -0 "$bench_pid" 2> /dev/null; do
  ready=$(sql "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'")
  max_ready=$(( ready > max_ready ? ready : max_ready )); sum_ready=$(( sum_ready + ready )); samples=$(( samples + 1 ))
  sleep 1
done
wait "$bench_pid"
end_lsn=$(sql "select pg_current_wal_lsn()")
wal_bytes=$(sql "select pg_wal_lsn_diff('$end_lsn', '$start_lsn')::bigint")
grep -E "^tps" "$DIR/pgbench-lag.out" | sed 's/^/lag phase /' | tee -a "$DIR/results"
echo "lag phase wal_bytes=$wal_bytes wal_mib_per_s=$(python3 -c "print(round($wal_bytes / $LAG_SECONDS / 1048576, 2))") archive_lag_segments max=$max_ready mean=$(python3 -c "print(round($sum_ready / max($samples, 1), 2))") samples=$samples" | tee -a "$DIR/results"
sql "alter system reset archive_command" > /dev/null
sql "select pg_reload_conf()" > /dev/null

# Full backups.
timed gv_full "$GV" --config "$DIR/gumvault.toml" run bench
echo "gv_full repo_bytes=$(size "$DIR/gv-repo")" | tee -a "$DIR/results"
grep -E "^(read|files)" "$DIR/out.gv_full" | tee -a "$DIR/results"
timed pgbr_full pgbackrest --stanza=bench --type=full backup
echo "pgbr_full repo_bytes=$(size "$DIR/pgbr/repo/backup")" | tee -a "$DIR/results"

# A busy while, then second backups.
as_pg "$BIN/pgbench" -h "$DIR" -p "$PORT" -n -c 2 -j 2 -T "$SECONDS_BUSY" postgres > "$DIR/pgbench.out" 2>&1
grep -E "^(number of transactions actually processed|tps)" "$DIR/pgbench.out" | tee -a "$DIR/results"
target=$(as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -d postgres -Atc \
  "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
expected=$(as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -d postgres -Atc "select sum(delta), count(*) from pgbench_history")
sleep 1
as_pg "$BIN/psql" -h "$DIR" -p "$PORT" -d postgres -Atc "insert into pgbench_history values (1,1,1,1,now(),'after'); select pg_switch_wal()" > /dev/null
gv_before=$(size "$DIR/gv-repo")
timed gv_second "$GV" --config "$DIR/gumvault.toml" run bench
echo "gv_second repo_bytes_added=$(( $(size "$DIR/gv-repo") - gv_before ))" | tee -a "$DIR/results"
grep -E "^(read|files)" "$DIR/out.gv_second" | tee -a "$DIR/results"
pgbr_before=$(size "$DIR/pgbr/repo/backup")
timed pgbr_incr pgbackrest --stanza=bench --type=incr backup
echo "pgbr_incr repo_bytes_added=$(( $(size "$DIR/pgbr/repo/backup") - pgbr_before ))" | tee -a "$DIR/results"
echo "archived WAL: gumvault wal/ $(size "$DIR/gv-repo/wal" 2>/dev/null || echo 0) bytes, pgBackRest $(size "$DIR/pgbr/repo/archive") bytes" | tee -a "$DIR/results"
as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop > /dev/null

# Restores to the noted time (from the full backups: the WAL of the busy while is replayed), until promoted.
restore_and_start() { # LABEL DATA PORT CMD...
  local label=$1 data=$2 port=$3; shift 3
  as_pg mkdir -m 0700 "$data"
  local t0; t0=$(date +%s.%N)
  timed "$label" "$@"
  as_pg "$BIN/pg_ctl" -D "$data" -l "$DIR/$label.log" -o "-p $port -k $DIR -c archive_mode=off" start > /dev/null
  wait_promoted "$port"
  local t1; t1=$(date +%s.%N)
  local got; got=$(as_pg "$BIN/psql" -h "$DIR" -p "$port" -d postgres -Atc "select sum(delta), count(*) from pgbench_history")
  echo "$label restore+recovery_secs=$(python3 -c "print(round($t1 - $t0, 1))") rows_ok=$([ "$got" = "$expected" ] && echo yes || echo "NO ($got vs $expected)")" | tee -a "$DIR/results"
  as_pg "$BIN/pg_ctl" -D "$data" -m immediate stop > /dev/null
}
first=$(as_pg "$GV" --config "$DIR/gumvault.toml" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
restore_and_start gv_restore "$DIR/gv-restored" 55500 \
  env GUMVAULT_CACHE_DIR="$DIR/gv-cache-restore" "$GV" --config "$DIR/gumvault.toml" restore "${first:0:8}" --source pg \
  --to-pgdata "$DIR/gv-restored" --at "$target"
# PostgreSQL's recovery_target_time takes no ISO "T": pgBackRest passes the target on as it is.
pgbr_target=$(echo "$target" | sed 's/T/ /; s/Z$/+00/')
pgbr_first=$(as_pg pgbackrest --stanza=bench info --output=json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][0]["label"])')
restore_and_start pgbr_restore "$DIR/pgbr-restored" 55501 \
  pgbackrest --stanza=bench --set="$pgbr_first" --pg1-path="$DIR/pgbr-restored" --type=time --target="$pgbr_target" \
  --target-action=promote restore
echo "--- results in $DIR/results"
cat "$DIR/results"
