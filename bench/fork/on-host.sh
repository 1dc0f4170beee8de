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
set -euo pipefail
cd /

[[ $# -eq 4 && $1 =~ ^[0-9]+$ && $2 =~ ^(idle|load)$ && $3 =~ ^[0-9]+$ && $4 =~ ^[0-9]+$ ]] ||
  { echo "usage: on-host.sh SCALE idle|load RUNS SLOW_RUNS" >&2; exit 1; }
scale=$1 load=$2 runs=$3 slow_runs=$4
PG_BIN=/usr/lib/postgresql/15/bin
src=bench-src
password=bench-password-$RANDOM$RANDOM
export PGPASSWORD=$password PGCONNECT_TIMEOUT=2

as_postgres() { runuser -u postgres -- "$@"; }
sql() { as_postgres "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h /run/postgresql -p "$port" "$@"; }
json_port() { sed -n 's/.*"port":\([0-9]*\).*/\1/p'; }
ms_since() { local now=${EPOCHREALTIME/./}; echo $(((now - ${1/./}) / 1000)); }

# Returns once role spark gets an answer from DB on PORT over TCP.
await_query() {
  until "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$1" -U spark -d "$2" -c 'SELECT 1' >/dev/null 2>&1; do sleep 0.01; done
}

emit() { # METHOD RUN MS [ERROR]
  if [[ -n ${4:-} ]]; then
    printf '{"method":"%s","scale":%s,"bytes":%s,"load":"%s","run":%s,"error":"%s"}\n' "$1" "$scale" "$bytes" "$load" "$2" "${4//\"/\'}"
  else
    printf '{"method":"%s","scale":%s,"bytes":%s,"load":"%s","run":%s,"ms":%s}\n' "$1" "$scale" "$bytes" "$load" "$2" "$3"
  fi
}

# A clean start each time: the source and what earlier runs left.
for name in $(spark-pg list | awk 'NR > 1 && $1 ~ /^bench-/ {print $1}' | sort -r); do spark-pg destroy "$name" --force >/dev/null; done
port=$(printf '%s\n' "$password" | spark-pg new "$src" --password-stdin --json | json_port)
echo "on-host: pgbench -i -s $scale on $src (port $port)" >&2
as_postgres "$PG_BIN/pgbench" -h /run/postgresql -p "$port" -i -q -s "$scale" spark >/dev/null 2>&1
sql -d spark -c 'ALTER TABLE pgbench_accounts OWNER TO spark' -c 'ALTER TABLE pgbench_branches OWNER TO spark' \
  -c 'ALTER TABLE pgbench_tellers OWNER TO spark' -c 'ALTER TABLE pgbench_history OWNER TO spark' -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
bytes=$(sql -d spark -c "SELECT pg_database_size('spark')")

loader=''
stop_load() { [[ -n $loader ]] && kill -INT -- "-$loader" 2>/dev/null; loader=''; }
trap stop_load EXIT
if [[ $load == load ]]; then
  setsid "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U spark -c 2 -j 2 -T 36000 spark >/dev/null 2>&1 &
  loader=$!
  sleep 10
fi
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
