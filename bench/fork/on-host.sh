#!/usr/bin/env bash
# Runs on a Sparks host, as root, with spark-pg installed: times four ways to a private writable
# copy of a pgbench database, from command start to the first successful query over TCP as role
# spark. Prints one JSON line per measurement (or per refusal).
#   btrfs-fork   spark-pg fork (checkpoint, snapshot, crash recovery, own port and password)
#   file-copy    CREATE DATABASE ... TEMPLATE spark STRATEGY FILE_COPY (in the source's cluster)
#   wal-log      CREATE DATABASE ... TEMPLATE spark STRATEGY WAL_LOG
#   dump-restore pg_dump -Fc | pg_restore into a new database of the source's cluster
# Usage: on-host.sh SCALE LOAD(idle|load) RUNS SLOW_RUNS
#   RUNS for btrfs-fork, SLOW_RUNS for the others. Under load, pgbench -c 2 writes to the source
#   throughout, and each measurement waits 10 s after the previous one, as forks come in practice.
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 4 && $1 =~ ^[0-9]+$ && $2 =~ ^(idle|load)$ && $3 =~ ^[0-9]+$ && $4 =~ ^[0-9]+$ ]] ||
  { echo "usage: on-host.sh SCALE idle|load RUNS SLOW_RUNS" >&2; exit 1; }
scale=$1 load=$2 runs=$3 slow_runs=$4

emit() { # METHOD RUN MS [ERROR]
  if [[ -n ${4:-} ]]; then
    printf '{"method":"%s","scale":%s,"bytes":%s,"load":"%s","run":%s,"error":"%s"}\n' "$1" "$scale" "$bytes" "$load" "$2" "${4//\"/\'}"
  else
    printf '{"method":"%s","scale":%s,"bytes":%s,"load":"%s","run":%s,"ms":%s}\n' "$1" "$scale" "$bytes" "$load" "$2" "$3"
  fi
}

make_source "$scale"
[[ $load == idle ]] || start_load 0
pause() { if [[ $load == load ]]; then sleep 10; else sql -d postgres -c CHECKPOINT; sync; sleep 1; fi; }

for ((i = 1; i <= runs; i++)); do
  pause
  t0=$EPOCHREALTIME
  fork_port=$(printf '%s\n' "$password" | spark-pg fork "$src" "bench-fork-$i" --password-stdin --json | json_port)
  await_query "$fork_port" spark
  emit btrfs-fork "$i" "$(ms_since "$t0")"
  spark-pg destroy "bench-fork-$i" >/dev/null
done

for strategy in file_copy wal_log; do
  method=${strategy//_/-}
  for ((i = 1; i <= slow_runs; i++)); do
    pause
    t0=$EPOCHREALTIME
    if out=$("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U spark -d postgres \
      -c "CREATE DATABASE bench_copy TEMPLATE spark STRATEGY $strategy" 2>&1); then
      await_query "$port" bench_copy
      emit "$method" "$i" "$(ms_since "$t0")"
      sql -d postgres -c 'DROP DATABASE bench_copy'
    else
      emit "$method" "$i" 0 "$(printf '%s' "$out" | head -n 1)"
      break
    fi
  done
done

for ((i = 1; i <= slow_runs; i++)); do
  pause
  t0=$EPOCHREALTIME
  "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U spark -d postgres -c 'CREATE DATABASE bench_restore'
  "$PG_BIN/pg_dump" -h 127.0.0.1 -p "$port" -U spark -Fc spark |
    "$PG_BIN/pg_restore" -h 127.0.0.1 -p "$port" -U spark -d bench_restore
  await_query "$port" bench_restore
  emit dump-restore "$i" "$(ms_since "$t0")"
  sql -d postgres -c 'DROP DATABASE bench_restore'
done

stop_load
spark-pg destroy "$src" >/dev/null
