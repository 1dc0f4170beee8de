# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the verbs that source this file
# Helpers shared by the spark-pg verbs. Sourced, never run.
#
# An instance NAME is the btrfs subvolume $SPARK_PG_ROOT/NAME holding:
#   data/           the PostgreSQL 15 data directory, WAL included, so one snapshot is consistent
#   spark-pg.meta   KEY=value lines: NAME ID PORT SOURCE SOURCE_ID CREATED
# The systemd unit spark-pg@NAME runs its postmaster. Nothing else is kept anywhere.

SPARK_PG_HOME=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
SPARK_PG_VERB=${0##*/spark-pg-}
PG_BIN=/usr/lib/postgresql/15/bin
PG_SOCKET_DIR=/run/postgresql
UNIT_DIR=/etc/systemd/system
SYSTEM_CONF=/etc/sparks/spark-pg.conf
NAME_RE='^[a-z][a-z0-9-]{0,30}[a-z0-9]$'
# Bounds in seconds: a fork never waits long on its source, nor anyone on the allocation lock.
CHECKPOINT_TIMEOUT=30
LOCK_TIMEOUT=60
# A fork's source is checkpointed first only past this much WAL since its last checkpoint:
# replaying 16 MB takes a fraction of a second, a checkpoint under write load often longer.
CHECKPOINT_MIN_WAL=$((16 * 1048576))

# Every failure ends here: one line on stderr, non-zero exit.
die() {
  printf 'spark-pg %s: %s\n' "$SPARK_PG_VERB" "$*" >&2
  exit 1
}

# Quote a string for a JSON document.
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# A JSON string, or null when empty.
json_str_or_null() {
  if [ -n "$1" ]; then json_str "$1"; else printf 'null'; fi
}

# Milliseconds since the epoch, from bash's own clock (no fork).
now_ms() {
  local t=${EPOCHREALTIME/./}
  printf '%s' "$((t / 1000))"
}

check_name() {
  [[ $1 =~ $NAME_RE ]] || die "invalid instance name '$(printable "$1")' (want ${NAME_RE})"
}

# Untrusted text made safe to echo in an error line.
printable() {
  local s=${1:0:64}
  printf '%s' "${s//[^[:alnum:][:punct:] ]/?}"
}

# --- configuration ----------------------------------------------------------------------------
# /etc/sparks/spark-pg.conf (or $SPARK_PG_CONF): KEY=value lines, read as data, never sourced.
#   SPARK_PG_ROOT         directory on the btrfs pool holding one subvolume per instance
#   SPARK_PG_PORTS        port range, e.g. 5432-5499
#   SPARK_PG_LISTEN       listen addresses, space separated (127.0.0.1 is always added)
#   SPARK_PG_ALLOW        CIDRs admitted over TCP with scram-sha-256, space separated (optional)
#   SPARK_PG_MIN_FREE_MB  free space the pool must keep for new instances and forks (default 512)

load_config() {
  local conf=${SPARK_PG_CONF:-$SYSTEM_CONF} line key value n=0
  [ -r "$conf" ] || die "cannot read config $conf"
  ROOT='' PORT_MIN='' PORT_MAX='' LISTEN=() ALLOW=() MIN_FREE_MB=512
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
    [[ $line =~ ^([A-Z_]+)=(.*)$ ]] || die "$conf:$n: not a KEY=value line"
    key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
    case $key in
      SPARK_PG_ROOT)
        [[ $value =~ ^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$ && ! $value =~ (^|/)\.\.?(/|$) ]] ||
          die "$conf:$n: SPARK_PG_ROOT must be a plain absolute path"
        ROOT=$value ;;
      SPARK_PG_PORTS)
        [[ $value =~ ^([0-9]{4,5})-([0-9]{4,5})$ ]] || die "$conf:$n: SPARK_PG_PORTS must be LOW-HIGH"
        PORT_MIN=$((10#${BASH_REMATCH[1]})) PORT_MAX=$((10#${BASH_REMATCH[2]}))
        ((1024 <= PORT_MIN && PORT_MIN <= PORT_MAX && PORT_MAX <= 65535)) ||
          die "$conf:$n: SPARK_PG_PORTS must lie within 1024-65535, low first" ;;
      SPARK_PG_LISTEN)
        read -r -a LISTEN <<<"$value"
        local a
        for a in "${LISTEN[@]}"; do valid_address "$a" || die "$conf:$n: bad listen address '$(printable "$a")'"; done ;;
      SPARK_PG_ALLOW)
        read -r -a ALLOW <<<"$value"
        local c
        for c in "${ALLOW[@]}"; do valid_cidr "$c" || die "$conf:$n: bad CIDR '$(printable "$c")'"; done ;;
      SPARK_PG_MIN_FREE_MB)
        [[ $value =~ ^[0-9]{1,7}$ ]] || die "$conf:$n: SPARK_PG_MIN_FREE_MB must be a number"
        MIN_FREE_MB=$((10#$value)) ;;
      *) die "$conf:$n: unknown key $key" ;;
    esac
  done <"$conf"
  [ -n "$ROOT" ] || die "$conf: SPARK_PG_ROOT is not set"
  [ -n "$PORT_MIN" ] || die "$conf: SPARK_PG_PORTS is not set"
  local a
  for a in "${LISTEN[@]}"; do [ "$a" = 127.0.0.1 ] && return 0; done
  LISTEN=(127.0.0.1 "${LISTEN[@]}")
}

valid_ipv4() {
  local IFS=. o
  [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  for o in $1; do ((10#$o <= 255)) || return 1; done
}

valid_ipv6() {
  [[ $1 =~ ^[0-9A-Fa-f:]{2,39}$ && $1 == *:*:* ]]
}

valid_address() {
  valid_ipv4 "$1" || valid_ipv6 "$1"
}

valid_cidr() {
  local addr=${1%/*} bits=${1##*/}
  [[ $1 == */* && $bits =~ ^[0-9]{1,3}$ ]] || return 1
  if valid_ipv4 "$addr"; then ((10#$bits <= 32)); else valid_ipv6 "$addr" && ((10#$bits <= 128)); fi
}

# The address a client on the network uses: the first non-loopback listen address.
public_address() {
  local a
  for a in "${LISTEN[@]}"; do
    [[ $a == 127.* || $a == ::1 ]] && continue
    if [[ $a == *:* ]]; then printf '[%s]' "$a"; else printf '%s' "$a"; fi
    return 0
  done
  printf '127.0.0.1'
}

# The pool must be mounted and btrfs; the root directory is made on first use.
require_root() {
  local parent=${ROOT%/*}
  if [ ! -d "$ROOT" ]; then
    [ "$(stat -f -c %T "${parent:-/}" 2>/dev/null)" = btrfs ] || die "$ROOT does not exist and ${parent:-/} is not on btrfs"
    mkdir -m 0755 "$ROOT" || die "cannot create $ROOT"
  fi
  [ "$(stat -f -c %T "$ROOT")" = btrfs ] || die "$ROOT is not on a btrfs filesystem"
}

# --- instances --------------------------------------------------------------------------------

inst_dir() { printf '%s/%s' "$ROOT" "$1"; }
data_dir() { printf '%s/%s/data' "$ROOT" "$1"; }
meta_file() { printf '%s/%s/spark-pg.meta' "$ROOT" "$1"; }
unit_name() { printf 'spark-pg@%s.service' "$1"; }

# An instance is a subvolume (inode 256 is a subvolume's root on btrfs) with a metadata file.
is_instance() {
  [ -f "$(meta_file "$1")" ] && [ "$(stat -c %i "$(inst_dir "$1")")" = 256 ]
}

require_instance() {
  is_instance "$1" || die "no instance named '$1'"
}

# Instance names, sorted.
instance_names() {
  local d n
  for d in "$ROOT"/*/; do
    n=${d%/}
    n=${n##*/}
    [[ $n =~ $NAME_RE ]] && [ -f "$d/spark-pg.meta" ] && printf '%s\n' "$n"
  done
  return 0
}

# Reads spark-pg.meta of NAME into META_* variables; a bad value is an error, never used.
read_meta() {
  local file line
  file=$(meta_file "$1")
  META_ID='' META_PORT='' META_SOURCE='' META_SOURCE_ID='' META_CREATED=''
  while IFS= read -r line; do
    case $line in
      ID=*) META_ID=${line#*=} ;;
      PORT=*) META_PORT=${line#*=} ;;
      SOURCE=*) META_SOURCE=${line#*=} ;;
      SOURCE_ID=*) META_SOURCE_ID=${line#*=} ;;
      CREATED=*) META_CREATED=${line#*=} ;;
    esac
  done <"$file"
  local uuid='^[0-9a-f-]{36}$'
  [[ $META_ID =~ $uuid && $META_PORT =~ ^[0-9]{4,5}$ && $META_CREATED =~ ^[0-9T:Z-]{20}$ &&
    ($META_SOURCE == '' || $META_SOURCE =~ $NAME_RE) &&
    ($META_SOURCE_ID == '' || $META_SOURCE_ID =~ $uuid) ]] || die "$file: invalid metadata"
}

# Writes stdin to FILE atomically; a failed write is one error line, a full pool named as such.
write_file() {
  local file=$1 err
  if ! err=$(cat 2>&1 >"$file.tmp") || ! err=$(mv -f "$file.tmp" "$file" 2>&1); then
    rm -f "$file.tmp"
    [[ $err == *"No space left"* ]] && die "pool full: cannot write $file"
    die "cannot write $file: ${err##*: }"
  fi
}

# write_meta NAME ID PORT SOURCE SOURCE_ID CREATED
write_meta() {
  printf 'NAME=%s\nID=%s\nPORT=%s\nSOURCE=%s\nSOURCE_ID=%s\nCREATED=%s\n' "$@" | write_file "$(meta_file "$1")"
}

new_id() { cat /proc/sys/kernel/random/uuid; }
utc_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# Names of the instances forked from the instance with ID $1.
forks_of() {
  local n
  while IFS= read -r n; do
    read_meta "$n"
    [ "$META_SOURCE_ID" = "$1" ] && printf '%s\n' "$n"
  done < <(instance_names)
  return 0
}

# --- allocation (callers hold the lock) -------------------------------------------------------

# Serialises name checks, port choice and subvolume creation across concurrent verbs.
take_lock() {
  exec {LOCK_FD}>>"$ROOT/.spark-pg.lock"
  flock -w "$LOCK_TIMEOUT" "$LOCK_FD" || die "timed out waiting for $ROOT/.spark-pg.lock"
}

release_lock() {
  exec {LOCK_FD}>&-
}

port_listening() {
  [ -n "$(ss -Hltn "sport = :$1")" ] || [ -e "$PG_SOCKET_DIR/.s.PGSQL.$1" ]
}

# The lowest port in the range that no instance records and nothing on the host listens on.
allocate_port() {
  local -A taken=()
  local n p
  while IFS= read -r n; do
    read_meta "$n"
    taken[$META_PORT]=1
  done < <(instance_names)
  for ((p = PORT_MIN; p <= PORT_MAX; p++)); do
    [ -n "${taken[$p]:-}" ] && continue
    port_listening "$p" && continue
    printf '%s' "$p"
    return 0
  done
  die "no free port in $PORT_MIN-$PORT_MAX"
}

pool_free_mb() {
  printf '%s' "$(($(stat -f -c '%a * %S' "$ROOT") / 1048576))"
}

# btrfs returns the space of deleted files at its next commit: when short, commit and look again.
require_free_space() {
  local avail_mb
  avail_mb=$(pool_free_mb)
  if ((avail_mb < MIN_FREE_MB)); then
    btrfs filesystem sync "$ROOT" >/dev/null 2>&1 || true
    avail_mb=$(pool_free_mb)
  fi
  ((avail_mb >= MIN_FREE_MB)) || die "pool full: ${avail_mb} MiB free on $ROOT, need ${MIN_FREE_MB} MiB"
}

# --- files written into an instance -----------------------------------------------------------

write_postgresql_conf() {
  local name=$1 port=$2 listen
  listen=$(IFS=,; printf '%s' "${LISTEN[*]}")
  write_file "$(data_dir "$name")/postgresql.conf" <<EOF
# Written by spark-pg for instance $name; rewritten on fork. Tune with ALTER SYSTEM.
cluster_name = '$name'
port = $port
listen_addresses = '$listen'
unix_socket_directories = '$PG_SOCKET_DIR'
password_encryption = 'scram-sha-256'
# A fork starts with crash recovery; one syncfs of the pool is far cheaper than an fsync per file.
recovery_init_sync_method = syncfs
log_line_prefix = '[%p] '
EOF
}

# hba "locked": only the postgres OS user over the socket (a fork before its password is reset).
# hba "open": also role logins with scram-sha-256 from loopback and SPARK_PG_ALLOW.
write_hba() {
  local name=$1 mode=$2 cidr
  {
    printf '# Written by spark-pg for instance %s.\n' "$name"
    printf 'local all postgres peer\n'
    if [ "$mode" = open ]; then
      printf 'host all all 127.0.0.1/32 scram-sha-256\n'
      printf 'host all all ::1/128 scram-sha-256\n'
      for cidr in "${ALLOW[@]}"; do printf 'host all all %s scram-sha-256\n' "$cidr"; done
    fi
  } | write_file "$(data_dir "$name")/pg_hba.conf"
}

# --- postgres ---------------------------------------------------------------------------------

# Runs a command as the postgres OS user (no PAM session, so no login cost on a fork's path).
AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups --)
as_postgres() {
  "${AS_POSTGRES[@]}" "$@"
}

# psql as the postgres OS user over the socket; SQL on stdin, output captured by the caller.
pg_sql() {
  local port=$1 db=$2
  PGCONNECT_TIMEOUT=5 as_postgres "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
    -h "$PG_SOCKET_DIR" -p "$port" -d "$db" -f -
}

# Reads one line from stdin as a password; rejects empty lines and control characters.
read_password() {
  local pw=''
  IFS= read -r pw || true
  [ -n "$pw" ] || die "no password on stdin"
  [[ $pw == *[[:cntrl:]]* ]] && die "password contains control characters"
  ((${#pw} <= 1024)) || die "password longer than 1024 characters"
  PASSWORD=$pw
}

# SQL that sets role spark's password ('' clears it), never logged by the server.
password_sql() {
  local pw=$1
  printf "SET log_statement = 'none';\nSET log_min_error_statement = 'panic';\nSET log_min_duration_statement = -1;\n"
  if [ -n "$pw" ]; then
    printf "ALTER ROLE spark PASSWORD '%s';\n" "${pw//\'/\'\'}"
  else
    printf 'ALTER ROLE spark PASSWORD NULL;\n'
  fi
}

# --- systemd ----------------------------------------------------------------------------------

# Installs spark-pg@.service if it is missing or differs from ours; reloads systemd only then.
# The unit reads SPARK_PG_ROOT from the system config, so a SPARK_PG_CONF elsewhere must agree.
ensure_unit() {
  local ours=$SPARK_PG_HOME/systemd/spark-pg@.service target=$UNIT_DIR/spark-pg@.service
  if [ "${SPARK_PG_CONF:-$SYSTEM_CONF}" != "$SYSTEM_CONF" ]; then
    grep -qxE "SPARK_PG_ROOT=[\"']?${ROOT}[\"']?" "$SYSTEM_CONF" 2>/dev/null ||
      die "spark-pg@.service reads $SYSTEM_CONF, whose SPARK_PG_ROOT is not $ROOT"
  fi
  cmp -s "$ours" "$target" && return 0
  cp "$ours" "$target.tmp"
  mv -f "$target.tmp" "$target"
  systemctl daemon-reload || die "systemctl daemon-reload failed"
}

# Enables and starts NAME; returns once the postmaster reports ready (Type=notify). No daemon-reload:
# the enablement link is read at boot, and a reload would cost a fork a good part of its time.
start_unit() {
  local name=$1 unit err since=$((${EPOCHREALTIME%.*} - 1))
  unit=$(unit_name "$name")
  if ! err=$(systemctl enable --now --no-reload "$unit" 2>&1); then
    err=$(unit_failure "$name" "$since" "$err")
    [[ $err == *"No space left"* ]] && die "pool full: $unit failed to start: $err"
    die "$unit failed to start: $err"
  fi
}

# The most telling line about why NAME's unit failed since SINCE (epoch seconds): a full disk if
# the postmaster met one, else its last FATAL or PANIC, else what systemctl said.
unit_failure() {
  local name=$1 since=$2 fallback=$3 log line
  log=$(journalctl -q -o cat -u "$(unit_name "$name")" --since "@$since" --no-pager 2>/dev/null || true)
  line=$(grep -m 1 'No space left' <<<"$log" || grep -E 'FATAL|PANIC' <<<"$log" | tail -n 1 || true)
  [ -n "$line" ] || line=$(printf '%s\n' "$fallback" | tail -n 1)
  printf '%s' "$line"
}

# Stops and disables NAME; idempotent. Unlike enabling (where the links only matter at the next
# boot, so start_unit skips the reload), disabling reloads systemd: a manager that still thought
# multi-user.target wants NAME would start it again on the next `systemctl start` of that target.
stop_unit() {
  local unit
  unit=$(unit_name "$1")
  systemctl disable --now "$unit" >/dev/null 2>&1 || die "could not stop $unit"
  systemctl reset-failed "$unit" >/dev/null 2>&1 || true
}

# True while a postmaster holds NAME's data directory (under systemd or not).
postmaster_running() {
  local pidfile pid
  pidfile="$(data_dir "$1")/postmaster.pid"
  [ -f "$pidfile" ] || return 1
  read -r pid <"$pidfile" || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# state of each unit, one "NAME STATE ENABLED" line per name given.
unit_states() {
  (($# > 0)) || return 0
  local -a units=()
  local n id='' active='' file='' line
  for n in "$@"; do units+=("$(unit_name "$n")"); done
  while IFS= read -r line; do
    case $line in
      Id=*) id=${line#Id=} ;;
      ActiveState=*) active=${line#ActiveState=} ;;
      UnitFileState=*) file=${line#UnitFileState=} ;;
      '')
        [ -n "$id" ] && emit_state "$id" "$active" "$file"
        id='' active='' file='' ;;
    esac
  done < <(systemctl show --property=Id,ActiveState,UnitFileState "${units[@]}"; echo)
}

emit_state() {
  local n=${1#spark-pg@} state
  n=${n%.service}
  case $2 in
    active|reloading) state=running ;;
    activating) state=starting ;;
    deactivating) state=stopping ;;
    failed) state=failed ;;
    *) state=stopped ;;
  esac
  printf '%s %s %s\n' "$n" "$state" "$([ "$3" = enabled ] && echo true || echo false)"
}

# --- verbs' common parts ----------------------------------------------------------------------

usage_error() {
  die "usage: $(sed -n 's/^# Usage: //p' "$0" | head -n 1)"
}

# parse_args "OPTIONS" MIN MAX ARGS...: each allowed option seen sets OPT[option]; the rest go to
# ARGS, of which there must be MIN to MAX. Anything else is a usage error.
declare -A OPT=()
ARGS=()
parse_args() {
  local allowed=" $1 " min=$2 max=$3 arg
  shift 3
  for arg in "$@"; do
    if [[ $arg == -* ]]; then
      [[ $allowed == *" $arg "* ]] || usage_error
      OPT[$arg]=1
    else
      ARGS+=("$arg")
    fi
  done
  ((${#ARGS[@]} >= min && ${#ARGS[@]} <= max)) || usage_error
}

opt() { [ -n "${OPT[$1]:-}" ]; }

# Verbs that make an instance claim it right after creating its subvolume: any exit before
# commit_instance stops its unit and deletes the subvolume, so a failure leaves nothing behind.
CLAIMED=''
guard_claims() {
  trap rollback_claim EXIT
  trap 'exit 130' INT TERM HUP
}
claim_instance() { CLAIMED=$1; }
commit_instance() { CLAIMED=''; }
rollback_claim() {
  [ -n "$CLAIMED" ] || return 0
  systemctl disable --now "$(unit_name "$CLAIMED")" >/dev/null 2>&1 || true
  systemctl reset-failed "$(unit_name "$CLAIMED")" >/dev/null 2>&1 || true
  btrfs subvolume delete "$(inst_dir "$CLAIMED")" >/dev/null 2>&1 || true
}

# Runs a btrfs command; on failure dies with its last line, naming a full pool as such.
btrfs_run() {
  local out
  if ! out=$(btrfs "$@" 2>&1); then
    [[ $out == *"No space left"* ]] && die "pool full: btrfs $1 $2 failed with ENOSPC on $ROOT"
    die "btrfs $1 $2 failed: $(printf '%s\n' "$out" | tail -n 1)"
  fi
}

# The JSON object describing an instance (meta already read): name, state, enabled, port, source, created, uri.
instance_json() {
  local name=$1 state=$2 enabled=$3
  printf '{"name":%s,"state":%s,"enabled":%s,"port":%s,"source":%s,"created":%s,"uri":%s' \
    "$(json_str "$name")" "$(json_str "$state")" "$enabled" "$META_PORT" \
    "$(json_str_or_null "$META_SOURCE")" "$(json_str "$META_CREATED")" "$(json_str "$(instance_uri)")"
}

instance_uri() {
  printf 'postgresql://spark@%s:%s/spark' "$(public_address)" "$META_PORT"
}
