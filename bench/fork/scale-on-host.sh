#!/usr/bin/env bash
# Runs on a Sparks host, as root, with spark-pg installed: spark-pg at scale on one host, each
# figure beside the classical way to the same result. Prints one JSON line per measurement.
#   fork-ready   idle fork of a pgbench source at each SCALE (is it flat in the size?)
#   many-forks   FORKS forks of the last SCALE's source, kept running: each one's fork-ready time
#                as the count grows, then its memory (PSS of its processes) and its exclusive disk
#   rollback     spark-pg rollback to a named snapshot, after writes   | dump-restore: dropdb,
#                createdb, pg_restore -j 2 of a dump taken at the same point
#   reset        spark-pg reset of a fork of that snapshot (a fixture)  | template-file-copy and
#                template-wal-log: DROP DATABASE, CREATE DATABASE ... TEMPLATE fixture
# Times run from command start to role spark's first successful query over TCP.
# Usage: scale-on-host.sh RUNS SLOW_RUNS FORKS SCALE...   (the last SCALE is the one at scale)
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 4 && $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $3 =~ ^[0-9]+$ ]] ||
  { echo "usage: scale-on-host.sh RUNS SLOW_RUNS FORKS SCALE..." >&2; exit 1; }
runs=$1 slow_runs=$2 forks=$3
shift 3
# Server-side data generation and no VACUUM: a 16 GB source in minutes rather than most of an hour
# (a fork does not read the tables, so their visibility map does not matter here).
PGBENCH_INIT_STEPS=dtGp

emit() { # KIND METHOD RUN MS [EXTRA_JSON]
  printf '{"kind":"%s","method":"%s","scale":%s,"bytes":%s,"run":%s,"ms":%s%s}\n' "$1" "$2" "$scale" "$bytes" "$3" "$4" "${5:+,$5}"
}
quiesce() { sql -d postgres -c CHECKPOINT; sync; sleep 1; }
# fork_timed NAME [SOURCE]: fork SOURCE (default the source) as NAME; prints its ready time in ms,
# and spark-pg's steps (SPARK_PG_TIMING) as JSON members: "steps":{"locked":MS,...}.
steps_file=$(dirname "${BASH_SOURCE[0]}")/steps
fork_timed() {
  local t0 fork_port
  quiesce
  t0=$EPOCHREALTIME
  fork_port=$(printf '%s\n' "$password" | SPARK_PG_TIMING=1 spark-pg fork "${2:-$src}" "$1" --password-stdin --json 2>"$steps_file" | json_port)
  await_query "$fork_port" spark
  printf '%s "steps":{%s}\n' "$(ms_since "$t0")" "$(sed -n 's/^spark-pg: \([a-z]*\) at \([0-9]*\) ms$/"\1":\2/p' "$steps_file" | paste -sd, -)"
}
# emit_fork KIND RUN NAME [SOURCE]: a timed fork, as one line.
emit_fork() {
  local ms steps
  read -r ms steps < <(fork_timed "$3" "${4:-}")
  emit "$1" btrfs-fork "$2" "$ms" "$steps"
}
instance_port() { spark-pg status "$1" --json | json_port; }
# Some writes to the instance on PORT, so a rollback or reset has something to undo.
scribble() { as_postgres "$PG_BIN/pgbench" -h /run/postgresql -p "$1" -n -c 1 -t 500 spark >/dev/null 2>&1; }

for scale in "$@"; do
  make_source "$scale"
  for ((i = 1; i <= runs; i++)); do
    emit_fork fork-ready "$i" "bench-fork-$i"
    spark-pg destroy "bench-fork-$i" >/dev/null
  done
done

# FORKS forks side by side, each measured as the one before it keeps running.
root=$(sed -n 's/^SPARK_PG_ROOT=//p' /etc/sparks/spark-pg.conf | tr -d '"')
pool_used() { local block blocks free; read -r block blocks free < <(stat -f -c '%S %b %a' "$root"); echo $((block * (blocks - free))); }
used_before=$(pool_used)
for ((i = 1; i <= forks; i++)); do
  emit_fork many-forks "$i" "bench-many-$i"
done
sleep 10 # each fork's checkpoint after promotion, done
for ((i = 1; i <= forks; i++)); do
  # Proportional set size of the fork's postmaster and its children: pages shared with other
  # processes (the binaries, the page cache of files the forks share) counted by their share.
  main=$(systemctl show -P MainPID "spark-pg@bench-many-$i.service")
  mapfile -t children < <(pgrep -P "$main")
  read -r pss anon file shmem < <(for pid in "$main" "${children[@]}"; do cat "/proc/$pid/smaps_rollup" 2>/dev/null; done |
    awk '$1 == "Pss:" {p += $2} $1 == "Pss_Anon:" {a += $2} $1 == "Pss_File:" {f += $2} $1 == "Pss_Shmem:" {s += $2} END {print p * 1024, a * 1024, f * 1024, s * 1024}')
  exclusive=$(btrfs filesystem du -s --raw "$(spark-pg status "bench-many-$i" --json | sed -n 's/.*"path":"\([^"]*\)".*/\1/p')" | awk 'END {print $2}')
  emit fork-cost btrfs-fork "$i" 0 "\"pss\":$pss,\"anon\":$anon,\"file\":$file,\"shmem\":$shmem,\"exclusive_bytes\":$exclusive"
done
emit pool-use btrfs-fork 0 0 "\"forks\":$forks,\"used_before\":$used_before,\"used_after\":$(pool_used)"
for ((i = forks; i >= 1; i--)); do spark-pg destroy "bench-many-$i" >/dev/null; done

# Rollback: a named snapshot, and a dump, of the same state.
quiesce
spark-pg snapshot "$src" base >/dev/null
as_postgres "$PG_BIN/pg_dump" -h /run/postgresql -p "$port" -Fc -f /var/lib/postgresql/bench-base.dump spark
for ((i = 1; i <= runs; i++)); do
  scribble "$port"
  quiesce
  t0=$EPOCHREALTIME
  spark-pg rollback "$src" base --force >/dev/null
  await_query "$port" spark
  emit rollback btrfs-rollback "$i" "$(ms_since "$t0")"
done

# Reset: a fixture fork of the snapshot, written to and reset; the classical fixture is a template
# database in the source's cluster.
fork_timed bench-fixture "$src@base" >/dev/null
fixture_port=$(instance_port bench-fixture)
for ((i = 1; i <= runs; i++)); do
  scribble "$fixture_port"
  quiesce
  t0=$EPOCHREALTIME
  spark-pg reset bench-fixture >/dev/null
  await_query "$fixture_port" spark
  emit reset btrfs-reset "$i" "$(ms_since "$t0")"
done
spark-pg destroy bench-fixture >/dev/null

sql -d postgres -c 'CREATE DATABASE fixture TEMPLATE spark STRATEGY FILE_COPY'
for strategy in file_copy wal_log; do
  for ((i = 1; i <= slow_runs; i++)); do
    quiesce
    t0=$EPOCHREALTIME
    sql -d postgres -c 'DROP DATABASE IF EXISTS copy' -c "CREATE DATABASE copy TEMPLATE fixture STRATEGY $strategy OWNER spark"
    await_query "$port" copy
    emit reset "template-${strategy//_/-}" "$i" "$(ms_since "$t0")"
  done
done
sql -d postgres -c 'DROP DATABASE copy' -c 'DROP DATABASE fixture'

for ((i = 1; i <= slow_runs; i++)); do
  scribble "$port"
  quiesce
  t0=$EPOCHREALTIME
  sql -d postgres -c 'DROP DATABASE spark' -c 'CREATE DATABASE spark OWNER spark'
  # It exits 1 on errors it went past (none expected): said, not fatal to the bench.
  as_postgres "$PG_BIN/pg_restore" -h /run/postgresql -p "$port" -j 2 -d spark /var/lib/postgresql/bench-base.dump ||
    echo "scale-on-host: pg_restore reported errors" >&2
  await_query "$port" spark
  emit rollback dump-restore "$i" "$(ms_since "$t0")"
done
rm -f /var/lib/postgresql/bench-base.dump
spark-pg drop-snapshot "$src" base >/dev/null
spark-pg destroy "$src" >/dev/null
