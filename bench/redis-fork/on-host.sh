#!/usr/bin/env bash
# Runs on a Sparks host, as root, with spark-redis installed: times three ways to a private
# writable copy of a Redis dataset, from command start to the first successful command as user
# spark over TCP. Prints one JSON line per measurement.
#   spark-redis-fork  spark-redis fork (btrfs snapshot of the fsynced AOF, own port and password)
#   dump-restore      redis-cli --rdb (the source writes a dump and sends it), then a new
#                     redis-server that loads it
#   replica-sync      a new redis-server made a replica of the source (a full sync), then
#                     detached with REPLICAOF NO ONE
# Usage: on-host.sh MB LOAD(idle|load) RUNS SLOW_RUNS
#   MB of values (1000-byte values, MB*1000 keys); RUNS for spark-redis-fork, SLOW_RUNS for the
#   others. Under load, redis-benchmark writes to the source throughout, and each measurement waits
#   5 s after the previous one.
set -eEuo pipefail
trap 'echo "${BASH_SOURCE[0]##*/}: line $LINENO: exit $?" >&2' ERR
cd /
[[ $# -eq 4 && $1 =~ ^[0-9]+$ && $2 =~ ^(idle|load)$ && $3 =~ ^[0-9]+$ && $4 =~ ^[0-9]+$ ]] ||
  { echo "usage: on-host.sh MB idle|load RUNS SLOW_RUNS" >&2; exit 1; }
mb=$1 load=$2 runs=$3 slow_runs=$4
src=bench-src
password=bench-password-$RANDOM$RANDOM
# A port outside spark-redis's range for the classical copies, which run outside systemd.
spare_port=6500
work=$(mktemp -d /root/bench-redis.XXXXXX)
servers=()
loader=''
cleanup() {
  [[ -z $loader ]] || kill -TERM "$loader" 2>/dev/null || true
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

json_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
ms_since() { local now=${EPOCHREALTIME/./}; echo $(((now - ${1/./}) / 1000)); }
as_spark() { REDISCLI_AUTH=$password redis-cli -e --no-auth-warning --user spark -h 127.0.0.1 -p "$@"; }
# Returns once user spark gets an answer on PORT.
await_command() { until as_spark "$1" PING >/dev/null 2>&1; do sleep 0.005; done; }
# The PSS in kB of the process PID (what it costs the host in memory).
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }

emit() { # METHOD RUN MS [PSS_KB USED_MEMORY]
  printf '{"method":"%s","mb":%s,"used_memory":%s,"load":"%s","run":%s,"ms":%s,"pss_kb":%s,"fork_used_memory":%s}\n' \
    "$1" "$mb" "$used_memory" "$load" "$2" "$3" "${4:-null}" "${5:-null}"
}

# bench-src afresh, MB*1000 keys of 1000-byte values loaded through redis-cli --pipe, then its AOF
# rewritten as a server that ran a while would have it (an RDB base and a short tail).
for name in $(spark-redis list | awk 'NR > 1 && $1 ~ /^bench-/ {print $1}' | sort -r); do spark-redis destroy "$name" --force >/dev/null; done
port=$(printf '%s\n' "$password" | spark-redis new "$src" --password-stdin --json | json_field port)
echo "on-host: loading $mb MB into $src (port $port)" >&2
# shellcheck disable=SC2016 # python source: nothing in it is for the shell
python3 -c '
import sys
n, value = int(sys.argv[1]) * 1000, b"v" * 1000
out = sys.stdout.buffer
for i in range(n):
    key = b"key:%d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1000\r\n%s\r\n" % (len(key), key, value))
' "$mb" | REDISCLI_AUTH=$password redis-cli --no-auth-warning --user spark -h 127.0.0.1 -p "$port" --pipe >/dev/null
admin=$(sed -n 's/^ADMIN_PASSWORD=//p' "/srv/sparks/redis/$src/spark-redis.secret")
as_admin() { REDISCLI_AUTH=$admin redis-cli -e --no-auth-warning --user spark-admin -h 127.0.0.1 -p "$@"; }
# (A rewrite Redis started by itself while loading is waited for first: one runs at a time.)
aof_rewritten() { until as_admin "$port" INFO persistence | grep -q '^aof_rewrite_in_progress:0'; do sleep 0.2; done; }
aof_rewritten
as_admin "$port" BGREWRITEAOF >/dev/null
aof_rewritten
used_memory=$(as_admin "$port" INFO memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
# Redis waits 5 s by default before a diskless full sync, for more replicas to join it: the
# classical copies below would measure that wait, not the copy.
as_admin "$port" CONFIG SET repl-diskless-sync-delay 0 >/dev/null

# What appendfsync always costs: SET throughput with it and with everysec, same source, same run.
if [[ $load == idle ]]; then
  for fsync in always everysec always; do
    as_admin "$port" CONFIG SET appendfsync "$fsync" >/dev/null
    rps=$(redis-benchmark -h 127.0.0.1 -p "$port" --user spark -a "$password" -t set -r 100000 -d 100 -c 4 -P 8 -n 400000 -q 2>/dev/null |
      tr '\r' '\n' | sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1)
    printf '{"method":"throughput","mb":%s,"used_memory":%s,"load":"%s","appendfsync":"%s","sets_per_s":%s}\n' "$mb" "$used_memory" "$load" "$fsync" "${rps:-null}"
  done
fi

if [[ $load == load ]]; then
  redis-benchmark -h 127.0.0.1 -p "$port" --user spark -a "$password" -t set -r 100000 -d 100 -c 4 -P 8 -n 2000000000 -q >/dev/null 2>&1 &
  loader=$!
  sleep 5
fi
pause() { if [[ $load == load ]]; then sleep 5; else sync; sleep 1; fi; }

for ((i = 1; i <= runs; i++)); do
  pause
  t0=$EPOCHREALTIME
  fork_port=$(printf '%s\n' "$password" | spark-redis fork "$src" "bench-fork-$i" --password-stdin --json | json_field port)
  await_command "$fork_port"
  ms=$(ms_since "$t0")
  pid=$(systemctl show -P MainPID "spark-redis@bench-fork-$i")
  emit spark-redis-fork "$i" "$ms" "$(pss_kb "$pid")" "$(as_spark "$fork_port" INFO memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')"
  spark-redis destroy "bench-fork-$i" >/dev/null
done

# A plain redis-server on the spare port over DIR, user spark with the bench's password; its PID
# in server_pid.
start_plain() {
  local dir=$1
  shift
  {
    printf 'port %s\nbind 127.0.0.1\ndir %s\nsave ""\nappendonly no\nlogfile %s/log\n' "$spare_port" "$dir" "$dir"
    printf 'user default off\nuser spark on >%s ~* &* +@all\n' "$password"
    printf '%s\n' "$@"
  } >"$dir/redis.conf"
  chmod 0600 "$dir/redis.conf"
  redis-server "$dir/redis.conf" &
  server_pid=$!
  servers+=("$server_pid")
}
stop_plain() {
  kill -TERM "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$1"
}

for ((i = 1; i <= slow_runs; i++)); do
  pause
  dir=$work/restore-$i
  mkdir -p "$dir"
  t0=$EPOCHREALTIME
  as_admin "$port" --rdb "$dir/dump.rdb" >/dev/null 2>&1
  start_plain "$dir" "dbfilename dump.rdb"
  await_command "$spare_port"
  emit dump-restore "$i" "$(ms_since "$t0")" "$(pss_kb "$server_pid")"
  stop_plain "$dir"
done

for ((i = 1; i <= slow_runs; i++)); do
  pause
  dir=$work/replica-$i
  mkdir -p "$dir"
  t0=$EPOCHREALTIME
  start_plain "$dir" "masteruser spark-admin" "masterauth $admin" "replicaof 127.0.0.1 $port"
  until as_spark "$spare_port" INFO replication 2>/dev/null | tr -d '\r' | grep -qx 'master_link_status:up'; do sleep 0.005; done
  as_spark "$spare_port" REPLICAOF NO ONE >/dev/null
  await_command "$spare_port"
  emit replica-sync "$i" "$(ms_since "$t0")" "$(pss_kb "$server_pid")"
  stop_plain "$dir"
done

spark-redis destroy "$src" --force >/dev/null
