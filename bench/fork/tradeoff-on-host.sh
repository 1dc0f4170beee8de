#!/usr/bin/env bash
# Runs on a Sparks host, as root, with spark-pg installed: forks a pgbench source under write load
# with each SPARK_PG_CHECKPOINT_WAL_MB given (checkpoint the source first past that much WAL since
# its last checkpoint; else the fork replays it), RUNS times each, 10 s apart, under each load
# (pgbench -c 2 -j 2 at RATE transactions a second; 0: as fast as it goes). Prints one JSON line per
# fork: fork-ready ms (command start to role spark's first query over TCP), the WAL the source had
# written since its last checkpoint, whether the fork checkpointed it first, the fork's redo time
# and its end-of-recovery checkpoint's, from its log, and when spark-pg reached each of its steps
# (SPARK_PG_TIMING); and one per load with the transactions a second pgbench achieved.
# Usage: tradeoff-on-host.sh SCALE RUNS RATE[,RATE...] THRESHOLD_MB...
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 4 && $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $3 =~ ^[0-9]+(,[0-9]+)*$ ]] ||
  { echo "usage: tradeoff-on-host.sh SCALE RUNS RATE[,RATE...] THRESHOLD_MB..." >&2; exit 1; }
scale=$1 runs=$2
IFS=, read -ra rates <<<"$3"
shift 3
make_source "$scale"
conf_dir=$(dirname "${BASH_SOURCE[0]}")
transactions() { sql -d spark -c 'SELECT count(*) FROM pgbench_history'; }
for rate in "${rates[@]}"; do
  start_load "$rate"
  tx0=$(transactions) s0=$EPOCHREALTIME
  for threshold in "$@"; do
    conf=$conf_dir/spark-pg.conf.$threshold
    { grep -v '^SPARK_PG_CHECKPOINT_WAL_MB=' /etc/sparks/spark-pg.conf; echo "SPARK_PG_CHECKPOINT_WAL_MB=$threshold"; } >"$conf"
    for ((i = 1; i <= runs; i++)); do
      sleep 10
      name=bench-r$rate-t$threshold-$i
      pending=$(sql -d postgres -c "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), redo_lsn)::bigint FROM pg_control_checkpoint()")
      since=$(date '+%Y-%m-%d %H:%M:%S')
      t0=$EPOCHREALTIME
      fork_port=$(printf '%s\n' "$password" | SPARK_PG_TIMING=1 SPARK_PG_CONF=$conf spark-pg fork "$src" "$name" --password-stdin --json 2>"$conf_dir/steps" | json_port)
      await_query "$fork_port" spark
      ms=$(ms_since "$t0")
      log=$(journalctl -u "spark-pg@$name" --since "$since" -o cat --no-pager)
      redo=$(sed -n 's/.*redo done at .*elapsed: \([0-9.]*\) s.*/\1/p' <<<"$log" | head -n 1)
      # The end-of-recovery checkpoint's total time (null if the log has none).
      eor=$(awk '/checkpoint starting: end-of-recovery/ {e = 1} e && /checkpoint complete/ {sub(/.*total=/, ""); print $1 + 0; exit}' <<<"$log")
      # spark-pg's steps, ms from its start: {"locked":...,"snapshot":...,"started":...}
      steps=$(sed -n 's/^spark-pg: \([a-z]*\) at \([0-9]*\) ms$/"\1":\2/p' "$conf_dir/steps" | paste -sd, -)
      printf '{"rate":%s,"threshold_mb":%s,"run":%s,"ms":%s,"wal_since_checkpoint_mb":%s,"checkpointed":%s,"redo_s":%s,"end_of_recovery_checkpoint_s":%s,"steps":{%s}}\n' \
        "$rate" "$threshold" "$i" "$ms" "$((pending / 1048576))" "$([ "$pending" -ge $((threshold * 1048576)) ] && echo true || echo false)" \
        "${redo:-null}" "${eor:-null}" "$steps"
      spark-pg destroy "$name" >/dev/null
    done
  done
  tps=$((($(transactions) - tx0) * 1000 / $(ms_since "$s0")))
  stop_load
  printf '{"rate":%s,"tps":%s}\n' "$rate" "$tps"
done
spark-pg destroy "$src" >/dev/null
