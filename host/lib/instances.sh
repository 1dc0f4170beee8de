# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the verbs that source this file
# Instances on btrfs subvolumes, the part spark-pg and spark-redis share: names, records, locks,
# ports, units, claims and the create path. Sourced by each tool's library after it sets:
#   SPARK_TOOL         its name: instance NAME runs as the unit TOOL@NAME, recorded in NAME/TOOL.meta
#   RUN_DIR            its root-only lock directory
#   UNIT_FAILURE_RE    the server's log lines that say why it failed to start
#   PORT_SOCKET_PREFIX a path that, with a port appended, marks the port taken ('' for none)
#   SERVICE_USER       the OS user its servers run as, who owns each data/
#   PID_FILE           the file in data/ where a server writes its PID
# and defines the hooks:
#   bring_up_instance NAME  start or adopt a whole instance (META_* read, PASSWORD maybe set)
#   instance_uri            NAME's URI, without a password (META_* read)
#   tool_conf_key KEY VALUE WHERE   a config key of its own (the shared ones are handled here)
#   recover_instance NAME   optional: mend what a killed verb left of NAME, under NAME's lock
#   instance_json_fields    optional: the tool's own fields of an instance's JSON (",KEY":VALUE...)
#
# An instance NAME is the btrfs subvolume $ROOT/NAME (root's, 0755) holding data/ (the server's,
# owned by its service user: root never writes, reads or removes a path inside it but as that
# user) and TOOL.meta, root's record of it: KEY=value lines NAME ID PORT SOURCE SOURCE_ID
# SOURCE_SNAPSHOT CREATED OWNER PROTECTED EXPIRES STATUS.

# shellcheck source=../lib/sparks.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/sparks.sh"
CONF_PREFIX=${SPARK_TOOL^^}
CONF_PREFIX=${CONF_PREFIX//-/_}
SYSTEM_CONF=/etc/sparks/$SPARK_TOOL.conf

NAME_RE='^[a-z][a-z0-9-]{0,30}[a-z0-9]$'
# Who asked for an instance (a stack resource, e.g. sparks/dev/app-pg): creates by the same owner adopt.
OWNER_RE='^[A-Za-z0-9._/:-]{1,200}$'

check_name() {
  [[ $1 =~ $NAME_RE ]] || die "invalid instance name '$(printable "$1")' (want ${NAME_RE})"
}

check_owner() {
  [[ $1 =~ $OWNER_RE ]] || die "invalid owner '$(printable "$1")' (want ${OWNER_RE})"
}

# --- configuration ----------------------------------------------------------------------------
# /etc/sparks/TOOL.conf (or $TOOL_CONF, e.g. SPARK_PG_CONF): KEY=value lines, read as data, never
# sourced. The keys every tool has (PREFIX is SPARK_PG, SPARK_REDIS):
#   PREFIX_ROOT         directory on the btrfs pool holding one subvolume per instance
#   PREFIX_PORTS        port range, e.g. 5432-5499
#   PREFIX_LISTEN       listen addresses (IPv4, IPv6, DNS names), space separated (127.0.0.1 is always added)
#   PREFIX_MIN_FREE_MB  free space the pool must keep for new instances and forks (default 512)
# Any other key is the tool's own (tool_conf_key).

conf_file() {
  local var=${CONF_PREFIX}_CONF
  printf '%s' "${!var:-$SYSTEM_CONF}"
}

# Reads the config into ROOT, PORT_MIN, PORT_MAX, LISTEN, MIN_FREE_MB and the tool's own globals
# (which the tool sets to their defaults before calling this).
load_config() {
  local conf a
  conf=$(conf_file)
  ROOT='' PORT_MIN='' PORT_MAX='' LISTEN=() MIN_FREE_MB=512
  read_conf "$conf" conf_key
  [ -n "$ROOT" ] || die "$conf: ${CONF_PREFIX}_ROOT is not set"
  [ -n "$PORT_MIN" ] || die "$conf: ${CONF_PREFIX}_PORTS is not set"
  for a in "${LISTEN[@]}"; do [ "$a" = 127.0.0.1 ] && return 0; done
  LISTEN=(127.0.0.1 "${LISTEN[@]}")
}

# One KEY=value of the config, at WHERE (FILE:LINE).
conf_key() {
  local key=$1 value=$2 where=$3 a
  case ${key#"$CONF_PREFIX"_} in
    "$key") tool_conf_key "$@" ;;
    ROOT)
      plain_path "$value" "$key" "$where"
      ROOT=$value ;;
    PORTS)
      [[ $value =~ ^([0-9]{4,5})-([0-9]{4,5})$ ]] || die "$where: $key must be LOW-HIGH"
      PORT_MIN=$((10#${BASH_REMATCH[1]})) PORT_MAX=$((10#${BASH_REMATCH[2]}))
      ((1024 <= PORT_MIN && PORT_MIN <= PORT_MAX && PORT_MAX <= 65535)) ||
        die "$where: $key must lie within 1024-65535, low first" ;;
    LISTEN)
      read -r -a LISTEN <<<"${value,,}"
      for a in "${LISTEN[@]}"; do valid_address "$a" || die "$where: bad listen address '$(printable "$a")'"; done ;;
    MIN_FREE_MB)
      [[ $value =~ ^[0-9]{1,7}$ ]] || die "$where: $key must be a number"
      MIN_FREE_MB=$((10#$value)) ;;
    *) tool_conf_key "$@" ;;
  esac
}

# A key no tool knows.
tool_conf_key() { die "$3: unknown key $1"; }

# The host a client on the network uses: the first non-loopback listen address (or name).
public_host() {
  local a
  for a in "${LISTEN[@]}"; do
    [[ $a == 127.* || $a == ::1 || $a == localhost ]] && continue
    printf '%s' "$a"
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
meta_file() { printf '%s/%s/%s.meta' "$ROOT" "$1" "$SPARK_TOOL"; }
unit_name() { printf '%s@%s.service' "$SPARK_TOOL" "$1"; }

# Every subvolume under ROOT with an instance's name, whole or not, sorted.
instance_names() {
  local d n
  for d in "$ROOT"/*/; do
    n=${d%/}
    n=${n##*/}
    [[ $n =~ $NAME_RE ]] && is_subvolume "$ROOT/$n" && printf '%s\n' "$n"
  done
  return 0
}

# A whole instance, or dies naming why not.
require_instance() {
  is_subvolume "$(inst_dir "$1")" || die "no instance named '$1'"
  read_meta "$1"
  [ "$META_HEALTH" = ok ] || die "'$1' is broken ($META_PROBLEM); destroy it"
}

# read_record FILE PREFIX KEY...: each KEY=value line of FILE whose KEY is one of KEYs into
# PREFIX_KEY (data, never sourced; other lines ignored; the last of a KEY wins). Never fails.
read_record() {
  local file=$1 prefix=$2 line key
  shift 2
  while IFS= read -r line; do
    key=${line%%=*}
    [[ $line == *=* && $key =~ ^[A-Z_]+$ && " $* " == *" $key "* ]] && printf -v "${prefix}_$key" '%s' "${line#*=}"
  done <"$file" || true
}

# Reads TOOL.meta of NAME into META_* and never fails. META_HEALTH says what was found:
#   ok       a whole instance
#   partial  a create that has not finished: no metadata yet, its source's (a fork's snapshot
#            before its own is written), or STATUS=creating; never held data of its own
#   corrupt  metadata that does not parse: a whole instance, perhaps, whose record is damaged
# META_PORT stays set whenever the recorded port parses, so its port is never handed out again.
read_meta() {
  local name=$1 file uuid='^[0-9a-f-]{36}$'
  file=$(meta_file "$name")
  clear_meta
  META_STATUS=ready META_HEALTH=ok META_PROBLEM=''
  if [ ! -f "$file" ]; then
    META_HEALTH=partial META_PROBLEM='no metadata: its create was interrupted'
    return 0
  fi
  read_record "$file" META NAME ID PORT SOURCE SOURCE_ID SOURCE_SNAPSHOT CREATED OWNER PROTECTED EXPIRES STATUS
  [[ $META_PORT =~ ^[0-9]{4,5}$ ]] || META_PORT=''
  if ! [[ $META_NAME =~ $NAME_RE && $META_ID =~ $uuid && -n $META_PORT && $META_CREATED =~ $UTC_RE &&
    ($META_SOURCE == '' || $META_SOURCE =~ $NAME_RE) && ($META_SOURCE_ID == '' || $META_SOURCE_ID =~ $uuid) &&
    ($META_SOURCE_SNAPSHOT == '' || $META_SOURCE_SNAPSHOT =~ $NAME_RE) && $META_PROTECTED =~ ^(true|false)$ &&
    ($META_EXPIRES == '' || $META_EXPIRES =~ $UTC_RE) &&
    ($META_OWNER == '' || $META_OWNER =~ $OWNER_RE) && $META_STATUS =~ ^(creating|ready)$ ]]; then
    local port=$META_PORT
    clear_meta
    META_PORT=$port META_HEALTH=corrupt META_PROBLEM="invalid metadata in $file"
  elif [ "$META_NAME" != "$name" ]; then
    # The source's record, copied by the snapshot: none of it (its port included) is this one's.
    clear_meta
    META_HEALTH=partial META_PROBLEM='a snapshot without its own metadata: its fork was interrupted'
  elif [ "$META_STATUS" = creating ]; then
    META_HEALTH=partial META_PROBLEM='its create was interrupted'
  fi
}

UTC_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'
clear_meta() {
  META_NAME='' META_ID='' META_PORT='' META_SOURCE='' META_SOURCE_ID='' META_SOURCE_SNAPSHOT='' META_CREATED=''
  META_OWNER='' META_PROTECTED=false META_EXPIRES=''
}

# write_meta NAME STATUS: NAME's record from the META_* values; STATUS is creating until its
# verb has finished, then ready.
write_meta() {
  printf 'NAME=%s\nID=%s\nPORT=%s\nSOURCE=%s\nSOURCE_ID=%s\nSOURCE_SNAPSHOT=%s\nCREATED=%s\nOWNER=%s\nPROTECTED=%s\nEXPIRES=%s\nSTATUS=%s\n' \
    "$1" "$META_ID" "$META_PORT" "$META_SOURCE" "$META_SOURCE_ID" "$META_SOURCE_SNAPSHOT" "$META_CREATED" "$META_OWNER" \
    "$META_PROTECTED" "$META_EXPIRES" "$2" | write_file "$(meta_file "$1")" 0644
}

# What a fork was made from, as fork takes it: SOURCE or SOURCE@SNAPSHOT.
source_spec() { printf '%s' "$META_SOURCE${META_SOURCE_SNAPSHOT:+@$META_SOURCE_SNAPSHOT}"; }

# Names of the whole instances forked from the instance with ID $1.
forks_of() {
  local n
  while IFS= read -r n; do
    read_meta "$n"
    [ "$META_HEALTH" = ok ] && [ "$META_SOURCE_ID" = "$1" ] && printf '%s\n' "$n"
  done < <(instance_names)
  return 0
}

# Stops NAME's unit and deletes its subvolume: destroy, and the clean-up of a partial create.
remove_instance() {
  stop_unit "$1"
  server_running "$1" && die "'$1' is running outside systemd; stop that server first"
  btrfs_run subvolume delete "$(inst_dir "$1")"
}

# Called by new and fork with NAME's lock held, before anything is made. Sets EXISTING:
#   none   NAME is free (a partial create by the same owner, or by an unknown one, was removed)
#   adopt  NAME is a whole instance made for OWNER from SOURCE: an interrupted or repeated
#          create by the same requester, to be finished rather than refused
# Any other NAME is refused: a create never touches what someone else made.
check_existing() {
  local name=$1 owner=$2 source=$3 made_from
  EXISTING=none
  [ -e "$(inst_dir "$name")" ] || [ -L "$(inst_dir "$name")" ] || return 0
  is_subvolume "$(inst_dir "$name")" || die "'$name' already exists"
  read_meta "$name"
  case $META_HEALTH in
    ok)
      if [ -z "$owner" ] || [ "$META_OWNER" != "$owner" ]; then die "'$name' already exists"; fi
      made_from=$(source_spec)
      [ "$made_from" = "$source" ] ||
        die "'$name' already exists, made from '${made_from:-nothing}', not '${source:-nothing}'"
      EXISTING=adopt ;;
    partial)
      [ -z "$META_OWNER" ] || [ "$META_OWNER" = "$owner" ] || die "'$name' already exists"
      remove_instance "$name" ;;
    *) die "'$name' already exists and is broken ($META_PROBLEM); destroy it first" ;;
  esac
}

# "TOTAL EXCLUSIVE" bytes of the subvolume at PATH, from `btrfs filesystem du` (0 0 if it cannot
# be read): exclusive is what deleting it would free, the rest it shares with other subvolumes.
disk_use() {
  local out total exclusive
  out=$(btrfs filesystem du -s --raw "$1" 2>/dev/null | tail -n 1) || out=''
  read -r total exclusive _ <<<"$out"
  [[ $total =~ ^[0-9]+$ && $exclusive =~ ^[0-9]+$ ]] || { total=0 exclusive=0; }
  printf '%s %s' "$total" "$exclusive"
}

# --- allocation (callers hold the lock) -------------------------------------------------------

port_listening() {
  [ -n "$(ss -Hltn "sport = :$1")" ] || { [ -n "$PORT_SOCKET_PREFIX" ] && [ -e "$PORT_SOCKET_PREFIX$1" ]; }
}

# The lowest port in the range that no instance (whole or not) records and nothing listens on.
allocate_port() {
  local -A taken=()
  local n p
  while IFS= read -r n; do
    read_meta "$n"
    [ -z "$META_PORT" ] || taken[$META_PORT]=1
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

# Reads one line from stdin as a password; rejects empty lines and control characters.
read_password() {
  local pw=''
  IFS= read -r pw || true
  [ -n "$pw" ] || die "no password on stdin"
  [[ $pw == *[[:cntrl:]]* ]] && die "password contains control characters"
  ((${#pw} <= 1024)) || die "password longer than 1024 characters"
  PASSWORD=$pw
}


# Runs a command as SERVICE_USER (no PAM session, so no login cost on a fork's path).
AS_SERVICE_USER=(setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_USER" --init-groups --)
as_service_user() {
  "${AS_SERVICE_USER[@]}" "$@"
}

# True while a server holds NAME's data directory (under systemd or not): the process its
# PID_FILE names works in that very directory (a snapshot's PID_FILE names its source's). The
# file is read as SERVICE_USER, bounded: root never opens what that user may have planted there
# (a FIFO, a symlink).
server_running() {
  local pid
  pid=$(timeout 10 "${AS_SERVICE_USER[@]}" head -n 1 -- "$(data_dir "$1")/$PID_FILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]{1,9}$ ]] && [ "/proc/$pid/cwd" -ef "$(data_dir "$1")" ]
}

# --- systemd ----------------------------------------------------------------------------------

# Installs TOOL@.service if it is missing or differs from ours; reloads systemd only then.
# The unit reads TOOL_ROOT from the system config, so a config elsewhere (TOOL_CONF) must agree.
ensure_unit() {
  if [ "$(conf_file)" != "$SYSTEM_CONF" ]; then
    grep -qxE "${CONF_PREFIX}_ROOT=[\"']?${ROOT}[\"']?" "$SYSTEM_CONF" 2>/dev/null ||
      die "$SPARK_TOOL@.service reads $SYSTEM_CONF, whose ${CONF_PREFIX}_ROOT is not $ROOT"
  fi
  install_unit "$SPARK_TOOL@.service"
}

# Enables and starts NAME; returns once its server reports ready (Type=notify). No daemon-reload:
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
# the server met one, else its last line matching UNIT_FAILURE_RE, else what systemctl said.
unit_failure() {
  local name=$1 since=$2 fallback=$3 log line
  log=$(journalctl -q -o cat -u "$(unit_name "$name")" --since "@$since" --no-pager 2>/dev/null || true)
  line=$(grep -m 1 'No space left' <<<"$log" || grep -E "$UNIT_FAILURE_RE" <<<"$log" | tail -n 1 || true)
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

# State of each unit, one "NAME STATE ENABLED RESTARTS" line per name given. RESTARTS counts
# systemd's automatic restarts since the unit was last started by hand.
unit_states() {
  (($# > 0)) || return 0
  local -a units=()
  local n id='' active='' sub='' file='' restarts=0 line
  for n in "$@"; do units+=("$(unit_name "$n")"); done
  while IFS= read -r line; do
    case $line in
      Id=*) id=${line#Id=} ;;
      ActiveState=*) active=${line#ActiveState=} ;;
      SubState=*) sub=${line#SubState=} ;;
      UnitFileState=*) file=${line#UnitFileState=} ;;
      NRestarts=*) restarts=${line#NRestarts=} ;;
      '')
        [ -n "$id" ] && emit_state "$id" "$active" "$sub" "$file" "$restarts"
        id='' active='' sub='' file='' restarts=0 ;;
    esac
  done < <(systemctl show --property=Id,ActiveState,SubState,UnitFileState,NRestarts "${units[@]}"; echo)
}

# "restarting": the server died and systemd will start it again (Restart=on-failure);
# "failed": it gave up (a crash loop past the unit's start limit, or a failed start).
emit_state() {
  local n=${1#"$SPARK_TOOL"@} state
  n=${n%.service}
  case $2 in
    active|reloading) state=running ;;
    activating) state=starting; [ "$3" = auto-restart ] && state=restarting ;;
    deactivating) state=stopping ;;
    failed) state=failed ;;
    *) state=stopped ;;
  esac
  [[ $5 =~ ^[0-9]+$ ]] || set -- "$1" "$2" "$3" "$4" 0
  printf '%s %s %s %s\n' "$n" "$state" "$([ "$4" = enabled ] && echo true || echo false)" "$5"
}

# The state a listing shows: systemd's for a whole instance; "creating" for a partial one whose
# creator is alive, "broken" for every other one (its create died, or its record is damaged).
shown_state() {
  if [ "$META_HEALTH" = ok ]; then printf '%s' "$2"
  elif [ "$META_HEALTH" = partial ] && name_busy "$1"; then printf creating
  else printf broken; fi
}

# --- verbs' common parts ----------------------------------------------------------------------

# Verbs that make an instance claim it right after creating its subvolume: any exit before
# commit_instance stops its unit and deletes the subvolume, so a failure leaves nothing behind.
# Its record says STATUS=creating until commit_instance rewrites it (META_* set) as ready: a verb
# killed outright (no trap runs) leaves a partial instance that list shows as broken and that
# destroy, or the same create again, removes.
CLAIMED=''
guard_claims() {
  trap rollback_claim EXIT
  trap 'exit 130' INT TERM HUP
}
claim_instance() { CLAIMED=$1; }
commit_instance() {
  write_meta "$CLAIMED" ready
  CLAIMED=''
}
rollback_claim() {
  [ -n "$CLAIMED" ] || return 0
  systemctl disable --now "$(unit_name "$CLAIMED")" >/dev/null 2>&1 || true
  systemctl reset-failed "$(unit_name "$CLAIMED")" >/dev/null 2>&1 || true
  btrfs subvolume delete "$(inst_dir "$CLAIMED")" >/dev/null 2>&1 || true
}

# new and fork: --owner checked, NAME locked, and what already holds NAME dealt with
# (check_existing); an instance made for the same owner is adopted and reported here.
begin_create() {
  local name=$1 source=$2
  OWNER=${OPT[--owner]:-}
  [ -z "${OPT[--owner]+set}" ] || check_owner "$OWNER"
  lock_instance "$name"
  check_existing "$name" "$OWNER" "$source"
  [ "$EXISTING" = adopt ] || return 0
  bring_up_instance "$name"
  report_created "$name" true false
  exit 0
}

# The JSON (or line) new and fork print: the instance object, adopted, and for a fork hot.
report_created() {
  local name=$1 adopted=$2 hot=$3
  if opt --json; then
    instance_json "$name" running true
    [ -z "$META_SOURCE" ] || printf ',"hot":%s' "$hot"
    printf ',"adopted":%s,"ready_ms":%s}\n' "$adopted" "$(($(now_ms) - STARTED_MS))"
  elif [ "$adopted" = true ]; then
    printf 'adopted %s on port %s: %s\n' "$name" "$META_PORT" "$(instance_uri)"
  elif [ -n "$META_SOURCE" ]; then
    printf 'forked %s from %s on port %s in %s ms: %s\n' "$name" "$(source_spec)" "$META_PORT" "$(($(now_ms) - STARTED_MS))" "$(instance_uri)"
  else
    printf 'created %s on port %s: %s\n' "$name" "$META_PORT" "$(instance_uri)"
  fi
}

# The JSON object describing an instance (meta already read), left open for more fields: name,
# state, enabled, port, source, created, uri, owner (null where a broken one does not say), then
# the tool's own (instance_json_fields).
instance_json() {
  local name=$1 state=$2 enabled=$3 uri=''
  [ -z "$META_PORT" ] || uri=$(instance_uri)
  printf '{"name":%s,"state":%s,"enabled":%s,"port":%s,"source":%s,"created":%s,"uri":%s,"owner":%s' \
    "$(json_str "$name")" "$(json_str "$state")" "$enabled" "${META_PORT:-null}" "$(json_str_or_null "$META_SOURCE")" \
    "$(json_str_or_null "$META_CREATED")" "$(json_str_or_null "$uri")" "$(json_str_or_null "$META_OWNER")"
  instance_json_fields
}
instance_json_fields() { :; }

# NAME's lock, taken by every verb that changes NAME; then what a killed verb left of NAME is
# mended (recover_instance, the tool's).
lock_instance() {
  take_name_lock "$1"
  recover_instance "$1"
}
recover_instance() { :; }
