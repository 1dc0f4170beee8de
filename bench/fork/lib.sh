# shellcheck shell=bash
# What the fork benches' on-host scripts share (run.ts and tradeoff.ts copy it beside them): a
# pgbench source made fresh, SQL on it, timing, a writer that runs until stopped. Sourced.
set -eEuo pipefail
# A failed command says where, not only the exit status the runner sees.
trap 'echo "${BASH_SOURCE[0]##*/}: line $LINENO: exit $?" >&2' ERR
cd /
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

# make_source SCALE: bench-src afresh (what earlier runs left goes first), pgbench data at SCALE
# (generated as PGBENCH_INIT_STEPS says, default client-side), owned by spark, checkpointed. Sets port and bytes.
make_source() {
  local name
  for name in $(spark-pg list | awk 'NR > 1 && $1 ~ /^bench-/ {print $1}' | sort -r); do spark-pg destroy "$name" --force >/dev/null; done
  port=$(printf '%s\n' "$password" | spark-pg new "$src" --password-stdin --json | json_port)
  echo "on-host: pgbench -i -s $1 on $src (port $port)" >&2
  as_postgres "$PG_BIN/pgbench" -h /run/postgresql -p "$port" -i -q -I "${PGBENCH_INIT_STEPS:-dtgvp}" -s "$1" spark >/dev/null 2>&1
  sql -d spark -c 'ALTER TABLE pgbench_accounts OWNER TO spark' -c 'ALTER TABLE pgbench_branches OWNER TO spark' \
    -c 'ALTER TABLE pgbench_tellers OWNER TO spark' -c 'ALTER TABLE pgbench_history OWNER TO spark' -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
  bytes=$(sql -d spark -c "SELECT pg_database_size('spark')")
}

# pgbench -c 2 -j 2 on the source until stop_load (or the script's exit), after 10 s of warm-up;
# start_load RATE holds it to RATE transactions a second (0: as fast as it goes). SIGTERM: pgbench
# takes SIGINT as "cancel the running queries" and goes on.
loader=''
stop_load() { [[ -n $loader ]] && kill -TERM -- "-$loader" 2>/dev/null; loader=''; }
start_load() {
  local rate=()
  [[ ${1:-0} == 0 ]] || rate=(-R "$1")
  trap stop_load EXIT
  setsid "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U spark -c 2 -j 2 "${rate[@]}" -T 36000 spark >/dev/null 2>&1 &
  loader=$!
  sleep 10
}
