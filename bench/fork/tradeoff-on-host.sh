#!/usr/bin/env bash
# Runs on a Sparks host, as root, with spark-pg installed: forks a pgbench source under write load
# with each SPARK_PG_CHECKPOINT_WAL_MB given (checkpoint the source first past that much WAL since
# its last checkpoint; else the fork replays it), RUNS times each, 10 s apart. Prints one JSON line
# per fork: fork-ready ms (command start to role spark's first query over TCP), the WAL the source
# had written since its last checkpoint, whether the fork checkpointed it first, the fork's redo
# time and its end-of-recovery checkpoint's, from its log.
# Usage: tradeoff-on-host.sh SCALE RUNS THRESHOLD_MB...
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 3 && $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] || { echo "usage: tradeoff-on-host.sh SCALE RUNS THRESHOLD_MB..." >&2; exit 1; }
scale=$1 runs=$2
shift 2
make_source "$scale"
start_load
conf_dir=$(dirname "${BASH_SOURCE[0]}")
for threshold in "$@"; do
  conf=$conf_dir/spark-pg.conf.$threshold
  { grep -v '^SPARK_PG_CHECKPOINT_WAL_MB=' /etc/sparks/spark-pg.conf; echo "SPARK_PG_CHECKPOINT_WAL_MB=$threshold"; } >"$conf"
  for ((i = 1; i <= runs; i++)); do
    sleep 10
    name=bench-t$threshold-$i
    pending=$(sql -d postgres -c "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), redo_lsn)::bigint FROM pg_control_checkpoint()")
    since=$(date '+%Y-%m-%d %H:%M:%S')
    t0=$EPOCHREALTIME
    fork_port=$(printf '%s\n' "$password" | SPARK_PG_CONF=$conf spark-pg fork "$src" "$name" --password-stdin --json | json_port)
    await_query "$fork_port" spark
    ms=$(ms_since "$t0")
    log=$(journalctl -u "spark-pg@$name" --since "$since" -o cat --no-pager)
    redo=$(sed -n 's/.*redo done at .*elapsed: \([0-9.]*\) s.*/\1/p' <<<"$log" | head -n 1)
    eor=$(grep 'checkpoint complete' <<<"$log" | sed -n 's/.*total=\([0-9.]*\) s.*/\1/p' | head -n 1)
    printf '{"threshold_mb":%s,"run":%s,"ms":%s,"wal_since_checkpoint_mb":%s,"checkpointed":%s,"redo_s":%s,"end_of_recovery_checkpoint_s":%s}\n' \
      "$threshold" "$i" "$ms" "$((pending / 1048576))" "$([ "$pending" -ge $((threshold * 1048576)) ] && echo true || echo false)" \
      "${redo:-null}" "${eor:-null}"
    spark-pg destroy "$name" >/dev/null
  done
done
stop_load
spark-pg destroy "$src" >/dev/null
