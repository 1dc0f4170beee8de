# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the verbs that source this file
# Helpers shared by the spark-pg verbs. Sourced, never run.
#
# An instance NAME is the btrfs subvolume $SPARK_PG_ROOT/NAME (root's, 0755) holding:
#   data/           the PostgreSQL 15 data directory, WAL included, so one snapshot is consistent;
#                   the postgres user's: root never writes, reads or removes a path inside it
#   spark-pg.meta   KEY=value lines: NAME ID PORT SOURCE SOURCE_ID SOURCE_SNAPSHOT CREATED OWNER
#                   PROTECTED EXPIRES STATUS
# Its named snapshots are read-only subvolumes $SPARK_PG_ROOT/.snapshots/NAME/SNAP, each with
# SNAP.meta beside it (KEY=value: NAME INSTANCE INSTANCE_ID CREATED OWNER STATUS); the dot keeps
# them out of the instance names. The systemd unit spark-pg@NAME runs its postmaster. Locks live in the root-only $RUN_DIR, the
# host's TLS key and certificate in $TLS_DIR. Nothing else is kept anywhere.

SPARK_TOOL=spark-pg
PG_BIN=/usr/lib/postgresql/15/bin
PG_SOCKET_DIR=/run/postgresql
SYSTEM_CONF=/etc/sparks/spark-pg.conf
RUN_DIR=/run/spark-pg
TLS_DIR=/etc/sparks/tls
TLS_CERT=$TLS_DIR/server.crt
TLS_KEY=$TLS_DIR/server.key
# The names the certificate covers, one per line: compared as written, so no parsing of openssl's text.
TLS_NAMES=$TLS_DIR/server.names
NAME_RE='^[a-z][a-z0-9-]{0,30}[a-z0-9]$'
# Who asked for an instance (a stack resource, e.g. sparks/dev/app-pg): creates by the same owner adopt.
OWNER_RE='^[A-Za-z0-9._/:-]{1,200}$'
# Bound in seconds: a fork never waits long on its source.
CHECKPOINT_TIMEOUT=30
# fork --ttl: a whole number of minutes, hours or days, up to a year.
TTL_RE='^([1-9][0-9]{0,5})([mhd])$'
TTL_MAX_S=$((366 * 86400))
# shellcheck source=sparks.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/sparks.sh"


check_name() {
  [[ $1 =~ $NAME_RE ]] || die "invalid instance name '$(printable "$1")' (want ${NAME_RE})"
}

check_owner() {
  [[ $1 =~ $OWNER_RE ]] || die "invalid owner '$(printable "$1")' (want ${OWNER_RE})"
}

# --- configuration ----------------------------------------------------------------------------
# /etc/sparks/spark-pg.conf (or $SPARK_PG_CONF): KEY=value lines, read as data, never sourced.
#   SPARK_PG_ROOT         directory on the btrfs pool holding one subvolume per instance
#   SPARK_PG_PORTS        port range, e.g. 5432-5499
#   SPARK_PG_LISTEN       listen addresses (IPv4, IPv6, DNS names), space separated (127.0.0.1 is always added)
#   SPARK_PG_ALLOW        CIDRs admitted over TCP with scram-sha-256, space separated (optional)
#   SPARK_PG_MIN_FREE_MB  free space the pool must keep for new instances and forks (default 512)
#   SPARK_PG_CHECKPOINT_WAL_MB  a running source is checkpointed before a fork or snapshot only
#                         past this much WAL since its last checkpoint (default 16): replaying a
#                         little WAL is cheaper than a checkpoint under write load, a lot is not

load_config() {
  local conf=${SPARK_PG_CONF:-$SYSTEM_CONF} a
  ROOT='' PORT_MIN='' PORT_MAX='' LISTEN=() ALLOW=() MIN_FREE_MB=512 CHECKPOINT_WAL_MB=16
  read_conf "$conf" pg_conf_key
  [ -n "$ROOT" ] || die "$conf: SPARK_PG_ROOT is not set"
  [ -n "$PORT_MIN" ] || die "$conf: SPARK_PG_PORTS is not set"
  for a in "${LISTEN[@]}"; do [ "$a" = 127.0.0.1 ] && return 0; done
  LISTEN=(127.0.0.1 "${LISTEN[@]}")
}

# One KEY=value of the config, at WHERE (FILE:LINE).
pg_conf_key() {
  local key=$1 value=$2 where=$3 a c
  case $key in
    SPARK_PG_ROOT)
      plain_path "$value" "$key" "$where"
      ROOT=$value ;;
    SPARK_PG_PORTS)
      [[ $value =~ ^([0-9]{4,5})-([0-9]{4,5})$ ]] || die "$where: SPARK_PG_PORTS must be LOW-HIGH"
      PORT_MIN=$((10#${BASH_REMATCH[1]})) PORT_MAX=$((10#${BASH_REMATCH[2]}))
      ((1024 <= PORT_MIN && PORT_MIN <= PORT_MAX && PORT_MAX <= 65535)) ||
        die "$where: SPARK_PG_PORTS must lie within 1024-65535, low first" ;;
    SPARK_PG_LISTEN)
      read -r -a LISTEN <<<"${value,,}"
      for a in "${LISTEN[@]}"; do valid_address "$a" || die "$where: bad listen address '$(printable "$a")'"; done ;;
    SPARK_PG_ALLOW)
      read -r -a ALLOW <<<"$value"
      for c in "${ALLOW[@]}"; do valid_cidr "$c" || die "$where: bad CIDR '$(printable "$c")'"; done ;;
    SPARK_PG_MIN_FREE_MB)
      [[ $value =~ ^[0-9]{1,7}$ ]] || die "$where: SPARK_PG_MIN_FREE_MB must be a number"
      MIN_FREE_MB=$((10#$value)) ;;
    SPARK_PG_CHECKPOINT_WAL_MB)
      [[ $value =~ ^[0-9]{1,6}$ ]] || die "$where: SPARK_PG_CHECKPOINT_WAL_MB must be a number of MB"
      CHECKPOINT_WAL_MB=$((10#$value)) ;;
    *) die "$where: unknown key $key" ;;
  esac
}

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

# --- root-only state --------------------------------------------------------------------------

# --- instances --------------------------------------------------------------------------------

inst_dir() { printf '%s/%s' "$ROOT" "$1"; }
data_dir() { printf '%s/%s/data' "$ROOT" "$1"; }
meta_file() { printf '%s/%s/spark-pg.meta' "$ROOT" "$1"; }
unit_name() { printf 'spark-pg@%s.service' "$1"; }

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

# Reads spark-pg.meta of NAME into META_* and never fails. META_HEALTH says what was found:
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
  postmaster_running "$1" && die "'$1' is running outside systemd; stop that postmaster first"
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

# Brings up a whole instance (META_* read), for start and adoption: postgresql.conf and pg_hba.conf
# rewritten as this spark-pg writes them (so an instance made before TLS gets it), the unit
# enabled and running (a failed one, a crash loop past its limit, started afresh), the settings
# reloaded, role spark's password set if PASSWORD is.
bring_up_instance() {
  local name=$1
  ensure_cert
  write_postgresql_conf "$name" "$META_PORT"
  write_hba "$name" open
  ensure_unit
  systemctl reset-failed "$(unit_name "$name")" >/dev/null 2>&1 || true
  start_unit "$name"
  {
    [ -z "$PASSWORD" ] || password_sql "$PASSWORD"
    printf 'SELECT pg_reload_conf();\n'
  } | pg_sql "$META_PORT" postgres >/dev/null 2>&1 || die "could not finish '$name' (password or reload)"
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

# --- named snapshots --------------------------------------------------------------------------

snap_root() { printf '%s/.snapshots' "$ROOT"; }
snap_dir() { printf '%s/.snapshots/%s' "$ROOT" "$1"; }
snap_path() { printf '%s/.snapshots/%s/%s' "$ROOT" "$1" "$2"; }
snap_meta_file() { printf '%s/.snapshots/%s/%s.meta' "$ROOT" "$1" "$2"; }

check_snap_name() {
  [[ $1 =~ $NAME_RE ]] || die "invalid snapshot name '$(printable "$1")' (want ${NAME_RE})"
}

# SOURCE or SOURCE@SNAP (how fork and the stack config name a snapshot) into SPEC_NAME, SPEC_SNAP.
parse_source_spec() {
  SPEC_NAME=${1%%@*} SPEC_SNAP=''
  [[ $1 != *@* ]] || SPEC_SNAP=${1#*@}
  check_name "$SPEC_NAME"
  [[ $1 != *@* ]] || check_snap_name "$SPEC_SNAP"
}

# The directories of snapshots: root-only, like RUN_DIR.
ensure_snap_dir() {
  ensure_root_only_dir "$(snap_root)"
  ensure_root_only_dir "$(snap_dir "$1")"
}

# Reads SNAP.meta of NAME's SNAP into SNAP_*; never fails. SNAP_HEALTH: ok; partial (a snapshot
# verb that did not finish: no record, STATUS=creating, or no subvolume); corrupt.
read_snap_meta() {
  local name=$1 snap=$2 file uuid='^[0-9a-f-]{36}$'
  file=$(snap_meta_file "$name" "$snap")
  SNAP_NAME='' SNAP_INSTANCE='' SNAP_INSTANCE_ID='' SNAP_CREATED='' SNAP_OWNER='' SNAP_STATUS='' SNAP_HEALTH=ok SNAP_PROBLEM=''
  if [ ! -f "$file" ]; then
    SNAP_HEALTH=partial SNAP_PROBLEM='no metadata: its snapshot was interrupted'
    return 0
  fi
  read_record "$file" SNAP NAME INSTANCE INSTANCE_ID CREATED OWNER STATUS
  if ! [[ $SNAP_NAME == "$snap" && $SNAP_INSTANCE == "$name" && $SNAP_INSTANCE_ID =~ $uuid && $SNAP_CREATED =~ $UTC_RE &&
    ($SNAP_OWNER == '' || $SNAP_OWNER =~ $OWNER_RE) && $SNAP_STATUS =~ ^(creating|ready)$ ]]; then
    SNAP_HEALTH=corrupt SNAP_PROBLEM="invalid metadata in $file"
  elif [ "$SNAP_STATUS" = creating ] || ! is_subvolume "$(snap_path "$name" "$snap")"; then
    SNAP_HEALTH=partial SNAP_PROBLEM='its snapshot was interrupted'
  fi
}

# write_snap_meta NAME SNAP STATUS, from the SNAP_* values.
write_snap_meta() {
  printf 'NAME=%s\nINSTANCE=%s\nINSTANCE_ID=%s\nCREATED=%s\nOWNER=%s\nSTATUS=%s\n' "$2" "$1" "$SNAP_INSTANCE_ID" \
    "$SNAP_CREATED" "$SNAP_OWNER" "$3" | write_file "$(snap_meta_file "$1" "$2")" 0600
}

# NAME's snapshots, whole or not (a subvolume or a record), sorted.
snapshot_names() {
  local d f n
  d=$(snap_dir "$1")
  [ -d "$d" ] || return 0
  for f in "$d"/*; do
    n=${f##*/}
    n=${n%.meta}
    [[ $n =~ $NAME_RE ]] && printf '%s\n' "$n"
  done | sort -u
}

# A whole snapshot SNAP of NAME as it is now (ID: a snapshot of an instance destroyed and made
# again under the same name is not this one's), SNAP_* read; or dies naming why not.
require_snapshot() {
  local name=$1 snap=$2 id=$3
  [ -e "$(snap_meta_file "$name" "$snap")" ] || [ -e "$(snap_path "$name" "$snap")" ] ||
    die "'$name' has no snapshot '$snap' (see spark-pg snapshots $name)"
  read_snap_meta "$name" "$snap"
  [ "$SNAP_HEALTH" = ok ] || die "snapshot '$snap' of '$name' is broken ($SNAP_PROBLEM); drop it"
  [ "$SNAP_INSTANCE_ID" = "$id" ] || die "snapshot '$snap' was taken of an earlier instance named '$name'; drop it"
}

# Deletes NAME's SNAP (subvolume, then record), whole or not; NAME's directory goes with its last.
remove_snapshot() {
  local path
  path=$(snap_path "$1" "$2")
  if is_subvolume "$path"; then btrfs_run subvolume delete "$path"; fi
  rm -f -- "$(snap_meta_file "$1" "$2")"
  rmdir "$(snap_dir "$1")" 2>/dev/null || true
}

# The whole instances made from snapshot SNAP of the instance with ID ID (fork NAME@SNAP).
forks_of_snapshot() {
  local n
  while IFS= read -r n; do
    read_meta "$n"
    [ "$META_HEALTH" = ok ] && [ "$META_SOURCE_ID" = "$1" ] && [ "$META_SOURCE_SNAPSHOT" = "$2" ] && printf '%s\n' "$n"
  done < <(instance_names)
  return 0
}

# Before a hot snapshot: a running instance on PORT gets a CHECKPOINT (bounded to 30 s; a failed
# one only makes recovery longer), unless it wrote under SPARK_PG_CHECKPOINT_WAL_MB of WAL since
# its last one. Prints
# true if it was running (the snapshot is taken hot), else false.
checkpoint_before_snapshot() {
  local name=$1 port=$2
  if ! postmaster_running "$name"; then printf false; return 0; fi
  pg_sql "$port" postgres >/dev/null 2>&1 <<EOF || true
SET statement_timeout = '${CHECKPOINT_TIMEOUT}s';
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), redo_lsn) >= $((CHECKPOINT_WAL_MB * 1048576)) AS stale
  FROM pg_control_checkpoint() \gset
\if :stale
CHECKPOINT;
\endif
EOF
  printf true
}

# --- protection and expiry --------------------------------------------------------------------

# refuse_if_protected NAME WHAT ("destroy it"): a protected instance is not destroyed, reset or
# rolled back without --force.
refuse_if_protected() {
  [ "$META_PROTECTED" != true ] || opt --force ||
    die "'$1' is protected; $2 anyway with --force, or spark-pg unprotect $1 first"
}

# protect and unprotect: set_protection NAME true|false, and report it.
set_protection() {
  local name=$1
  check_name "$name"
  load_config
  cd /
  lock_instance "$name"
  require_instance "$name"
  META_PROTECTED=$2
  write_meta "$name" ready
  if opt --json; then printf '{"name":%s,"protected":%s}\n' "$(json_str "$name")" "$META_PROTECTED"
  elif [ "$2" = true ]; then printf '%s is protected\n' "$name"
  else printf '%s is no longer protected\n' "$name"; fi
}

# --ttl DURATION (30m, 8h, 7d) as the UTC time it ends, counted from now.
ttl_expiry() {
  [[ $1 =~ $TTL_RE ]] || die "invalid --ttl '$(printable "$1")' (want a whole number of m, h or d: 30m, 8h, 7d)"
  local n=$((10#${BASH_REMATCH[1]})) seconds
  case ${BASH_REMATCH[2]} in m) seconds=$((n * 60)) ;; h) seconds=$((n * 3600)) ;; *) seconds=$((n * 86400)) ;; esac
  ((seconds <= TTL_MAX_S)) || die "invalid --ttl '$1' (at most 366d)"
  date -u -d "@$(($(date +%s) + seconds))" +%Y-%m-%dT%H:%M:%SZ
}

# True if the record read (META_*) has an expiry that has passed.
expired() {
  [ -n "$META_EXPIRES" ] && [[ "$META_EXPIRES" < "$(utc_now)" || "$META_EXPIRES" == "$(utc_now)" ]]
}

# --- replacing an instance's data (rollback, reset) -------------------------------------------

# Role spark's password as Postgres stores it (a SCRAM verifier, or '' for none), from NAME's
# running postmaster on PORT: rollback and reset put it back on the data they bring.
spark_verifier() {
  local v
  v=$(pg_sql "$2" postgres <<<"SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = 'spark';" 2>/dev/null) ||
    die "could not read role spark's password on '$1'"
  [ -z "$v" ] || [[ $v =~ ^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$ ]] ||
    die "role spark's password on '$1' is not a SCRAM-SHA-256 verifier; set it with ALTER ROLE ... PASSWORD under scram-sha-256 first"
  printf '%s' "$v"
}

# Client sessions on the postmaster on PORT (0 if it does not answer).
client_sessions() {
  pg_sql "$1" postgres <<<"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid();" 2>/dev/null || printf 0
}

# replace_data NAME FROM: NAME's data becomes a writable snapshot of the subvolume FROM (one of
# its snapshots, or its source), keeping NAME's record, port and role spark's password. Its
# sessions end (Postgres tells each "terminating connection due to administrator command");
# DISCONNECTED says how many. The old data stays aside until the new runs, and comes back if
# anything fails before. NAME's lock is held and META_* read. NAME runs after, even if it did not.
replace_data() {
  local name=$1 from=$2 dir verifier
  dir=$(inst_dir "$name")
  DISCONNECTED=0
  if postmaster_running "$name"; then
    DISCONNECTED=$(client_sessions "$META_PORT")
  else
    # Its password lives in its data: it is started to read it.
    ensure_unit
    start_unit "$name"
  fi
  verifier=$(spark_verifier "$name" "$META_PORT")
  REPLACED_ASIDE=$ROOT/.replaced-$name-$(new_id) REPLACING=$name
  trap undo_replace EXIT
  trap 'exit 130' INT TERM HUP
  stop_unit "$name"
  postmaster_running "$name" && die "'$name' is running outside systemd; stop that postmaster first"
  mv -T -- "$dir" "$REPLACED_ASIDE" || die "could not move '$name' aside"
  fault_point aside
  btrfs_run subvolume snapshot "$from" "$dir"
  # NAME's own record as it was: the snapshot holds its source's, or an older one.
  write_meta "$name" ready
  remove_pid_file "$name"
  write_postgresql_conf "$name" "$META_PORT"
  write_hba "$name" locked
  ensure_cert
  start_unit "$name"
  fault_point started
  {
    printf "SET log_statement = 'none';\nSET log_min_error_statement = 'panic';\nSET log_min_duration_statement = -1;\n"
    if [ -n "$verifier" ]; then printf "ALTER ROLE spark PASSWORD '%s';\n" "$verifier"; else printf 'ALTER ROLE spark PASSWORD NULL;\n'; fi
  } | pg_sql "$META_PORT" postgres >/dev/null 2>&1 || die "could not put role spark's password back on '$name'"
  write_hba "$name" open
  pg_sql "$META_PORT" postgres <<<'SELECT pg_reload_conf();' >/dev/null 2>&1 || die "could not reload '$name'"
  REPLACING=''
  trap - EXIT
  btrfs subvolume delete "$REPLACED_ASIDE" >/dev/null 2>&1 || true
}

# NAME's lock, taken by every verb that changes NAME, and what a killed rollback or reset left
# undone: its old data aside ($ROOT/.replaced-NAME-ID) goes back, and the new data, if any, goes
# (the verb did not happen; it can be run again), and NAME runs.
lock_instance() {
  local name=$1 dir aside
  take_name_lock "$name"
  dir=$(inst_dir "$name")
  for aside in "$ROOT/.replaced-$name-"*; do
    if ! [[ ${aside#"$ROOT/.replaced-$name-"} =~ ^[0-9a-f-]{36}$ ]] || ! is_subvolume "$aside"; then continue; fi
    stop_unit "$name"
    if is_subvolume "$dir"; then btrfs_run subvolume delete "$dir"; fi
    mv -T -- "$aside" "$dir" || die "could not put '$name' back from $aside"
    ensure_unit
    start_unit "$name"
    echo "spark-pg: put '$name' back as it was before a rollback or reset that did not finish" >&2
  done
}

# A replace_data that failed: the new data goes, the old comes back and runs again.
REPLACING=''
undo_replace() {
  [ -n "$REPLACING" ] || return 0
  local dir
  dir=$(inst_dir "$REPLACING")
  systemctl stop "$(unit_name "$REPLACING")" >/dev/null 2>&1 || true
  if [ -d "$REPLACED_ASIDE" ]; then
    if is_subvolume "$dir"; then btrfs subvolume delete "$dir" >/dev/null 2>&1 || true; fi
    mv -T -- "$REPLACED_ASIDE" "$dir" 2>/dev/null || true
  fi
  systemctl reset-failed "$(unit_name "$REPLACING")" >/dev/null 2>&1 || true
  systemctl enable --now --no-reload "$(unit_name "$REPLACING")" >/dev/null 2>&1 || true
}

# --- allocation (callers hold the lock) -------------------------------------------------------

port_listening() {
  [ -n "$(ss -Hltn "sport = :$1")" ] || [ -e "$PG_SOCKET_DIR/.s.PGSQL.$1" ]
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

# --- files written into an instance (as postgres: the data directory is theirs) --------------

# Postgres accepts host names in listen_addresses and listens on what each resolves to.
write_postgresql_conf() {
  local name=$1 port=$2 listen
  listen=$(IFS=,; printf '%s' "${LISTEN[*]}")
  write_file "$(data_dir "$name")/postgresql.conf" 0600 as_postgres <<EOF
# Written by spark-pg for instance $name; rewritten on fork. Tune with ALTER SYSTEM.
cluster_name = '$name'
port = $port
listen_addresses = '$listen'
unix_socket_directories = '$PG_SOCKET_DIR'
password_encryption = 'scram-sha-256'
# The host's certificate (spark-pg cert); pg_hba admits network logins over TLS only.
ssl = on
ssl_cert_file = '$TLS_CERT'
ssl_key_file = '$TLS_KEY'
# A fork starts with crash recovery; one syncfs of the pool is far cheaper than an fsync per file.
recovery_init_sync_method = syncfs
log_line_prefix = '[%p] '
EOF
}

# hba "locked": only the postgres OS user over the socket (a fork before its password is reset).
# hba "open": also role logins over TLS with scram-sha-256 from loopback and SPARK_PG_ALLOW.
write_hba() {
  local name=$1 mode=$2 cidr
  {
    printf '# Written by spark-pg for instance %s.\n' "$name"
    printf 'local all postgres peer\n'
    if [ "$mode" = open ]; then
      printf 'hostssl all all 127.0.0.1/32 scram-sha-256\n'
      printf 'hostssl all all ::1/128 scram-sha-256\n'
      for cidr in "${ALLOW[@]}"; do printf 'hostssl all all %s scram-sha-256\n' "$cidr"; done
    fi
  } | write_file "$(data_dir "$name")/pg_hba.conf" 0600 as_postgres
}

# A snapshot holds its source's postmaster.pid; removed as postgres, like every path in data/.
remove_pid_file() {
  as_postgres rm -f -- "$(data_dir "$1")/postmaster.pid" || die "cannot remove postmaster.pid of '$1'"
}

# --- TLS: one key and self-signed certificate per host -----------------------------------------

# TLS_DIR: root's, group postgres, 0750; refused if it is anything else (a symlink above all).
ensure_tls_dir() {
  [ -e "$TLS_DIR" ] || [ -L "$TLS_DIR" ] || install -d -m 0750 -o root -g postgres "$TLS_DIR" 2>/dev/null || true
  if [ -L "$TLS_DIR" ] || [ ! -d "$TLS_DIR" ] || [ "$(stat -c '%u %G %a' "$TLS_DIR")" != "0 postgres 750" ]; then
    die "$TLS_DIR is not root's directory (group postgres, 0750, not a symlink); refusing to use it"
  fi
}

# The names the certificate must cover: localhost and every listen address.
wanted_tls_names() {
  printf '%s\n' localhost "${LISTEN[@]}"
}

# True if the certificate exists and names every wanted address.
cert_current() {
  [ -f "$TLS_KEY" ] && [ -f "$TLS_CERT" ] && [ -f "$TLS_NAMES" ] || return 1
  local name
  while IFS= read -r name; do
    grep -qxF -- "$name" "$TLS_NAMES" || return 1
  done < <(wanted_tls_names)
}

# Makes the key once (root:postgres 0640, which Postgres accepts) and (re)issues the certificate
# when an address is missing from it: every name it covered before plus today's, with the same
# key, and running instances reload it. IP SANs for addresses, DNS SANs for names.
ensure_cert() {
  ensure_tls_dir
  cert_current && return 0
  ensure_run_dir
  local fd name sans='' tmp
  exec {fd}>>"$RUN_DIR/tls.lock"
  flock -w "$LOCK_TIMEOUT" "$fd" || die "timed out waiting for $RUN_DIR/tls.lock"
  if ! cert_current; then
    if [ ! -f "$TLS_KEY" ]; then
      tmp=$(mktemp "$TLS_KEY.XXXXXX") || die "cannot write in $TLS_DIR"
      if ! { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp" 2>/dev/null &&
        chgrp postgres "$tmp" && chmod 0640 "$tmp" && mv -fT "$tmp" "$TLS_KEY"; }; then
        rm -f "$tmp"
        die "could not make the TLS key $TLS_KEY"
      fi
    fi
    local -a names
    mapfile -t names < <({ [ -f "$TLS_NAMES" ] && cat "$TLS_NAMES"; wanted_tls_names; } | awk '!seen[$0]++')
    for name in "${names[@]}"; do
      valid_address "$name" || continue
      if valid_ipv4 "$name" || valid_ipv6 "$name"; then sans+="${sans:+,}IP:$name"; else sans+="${sans:+,}DNS:$name"; fi
    done
    tmp=$(mktemp "$TLS_CERT.XXXXXX") || die "cannot write in $TLS_DIR"
    if ! { openssl req -new -x509 -key "$TLS_KEY" -days 3650 -subj /CN=spark-pg -addext "subjectAltName=$sans" \
      -out "$tmp" 2>/dev/null && chmod 0644 "$tmp" && mv -fT "$tmp" "$TLS_CERT"; }; then
      rm -f "$tmp"
      die "could not issue the TLS certificate $TLS_CERT"
    fi
    printf '%s\n' "${names[@]}" | write_file "$TLS_NAMES" 0644
    systemctl kill --signal=SIGHUP --kill-whom=main 'spark-pg@*.service' >/dev/null 2>&1 || true
  fi
  exec {fd}>&-
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

# The SCRAM-SHA-256 verifier Postgres would store for the password on stdin (RFC 5802, 7677;
# SASLprep as Postgres applies it, falling back to the raw bytes where it does). Postgres stores a
# verifier as given, so the password itself never reaches it: not pg_stat_activity, the server
# log, pg_stat_statements. The password goes to python on stdin, never in argv or the environment.
scram_verifier() {
  # shellcheck disable=SC2016 # python source: nothing in it is for the shell
  python3 -c '
import base64, hashlib, hmac, os, sys
raw = sys.stdin.buffer.readline().rstrip(b"\n")
def saslprep(b):
    try: s = b.decode("utf-8")
    except UnicodeDecodeError: return b
    if s.isascii(): return b
    import stringprep, unicodedata
    s = "".join(" " if stringprep.in_table_c12(c) else "" if stringprep.in_table_b1(c) else c for c in s)
    s = unicodedata.normalize("NFKC", s)
    bad = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3, stringprep.in_table_c4,
           stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
           stringprep.in_table_c9, stringprep.in_table_a1)
    if not s or any(f(c) for c in s for f in bad): return b
    ral = [stringprep.in_table_d1(c) for c in s]
    if any(ral) and (any(stringprep.in_table_d2(c) for c in s) or not (ral[0] and ral[-1])): return b
    return s.encode("utf-8")
salt, rounds = os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", saslprep(raw), salt, rounds)
key = lambda label: hmac.new(salted, label, "sha256").digest()
b64 = lambda b: base64.b64encode(b).decode()
stored, server = b64(hashlib.sha256(key(b"Client Key")).digest()), b64(key(b"Server Key"))
print(f"SCRAM-SHA-256${rounds}:{b64(salt)}${stored}:{server}")
'
}

# SQL that sets role spark's password ('' clears it) as a SCRAM verifier made here; statement
# logging is off in that session as well.
password_sql() {
  local verifier
  printf "SET log_statement = 'none';\nSET log_min_error_statement = 'panic';\nSET log_min_duration_statement = -1;\n"
  if [ -n "$1" ]; then
    verifier=$(printf '%s\n' "$1" | scram_verifier) || die "could not compute the SCRAM verifier (python3)"
    [[ $verifier =~ ^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$ ]] ||
      die "could not compute the SCRAM verifier (python3)"
    printf "ALTER ROLE spark PASSWORD '%s';\n" "$verifier"
  else
    printf 'ALTER ROLE spark PASSWORD NULL;\n'
  fi
}

# --- systemd ----------------------------------------------------------------------------------

# Installs spark-pg@.service if it is missing or differs from ours; reloads systemd only then.
# The unit reads SPARK_PG_ROOT from the system config, so a SPARK_PG_CONF elsewhere must agree.
ensure_unit() {
  if [ "${SPARK_PG_CONF:-$SYSTEM_CONF}" != "$SYSTEM_CONF" ]; then
    grep -qxE "SPARK_PG_ROOT=[\"']?${ROOT}[\"']?" "$SYSTEM_CONF" 2>/dev/null ||
      die "spark-pg@.service reads $SYSTEM_CONF, whose SPARK_PG_ROOT is not $ROOT"
  fi
  install_unit spark-pg@.service
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

# True while a postmaster holds NAME's data directory (under systemd or not): the process its
# postmaster.pid names works in that very directory (a snapshot's postmaster.pid names its
# source's). The file is read as postgres, bounded: root never opens what postgres may have
# planted there (a FIFO, a symlink).
postmaster_running() {
  local pid
  pid=$(timeout 10 "${AS_POSTGRES[@]}" head -n 1 -- "$(data_dir "$1")/postmaster.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]{1,9}$ ]] && [ "/proc/$pid/cwd" -ef "$(data_dir "$1")" ]
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

# "restarting": the postmaster died and systemd will start it again (Restart=on-failure);
# "failed": it gave up (a crash loop past the unit's start limit, or a failed start).
emit_state() {
  local n=${1#spark-pg@} state
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
# state, enabled, port, source, source_snapshot, created, uri, owner, protected, expires (null
# where a broken one does not say).
instance_json() {
  local name=$1 state=$2 enabled=$3 uri=''
  [ -z "$META_PORT" ] || uri=$(instance_uri)
  printf '{"name":%s,"state":%s,"enabled":%s,"port":%s,"source":%s,"source_snapshot":%s,"created":%s,"uri":%s,"owner":%s,"protected":%s,"expires":%s' \
    "$(json_str "$name")" "$(json_str "$state")" "$enabled" "${META_PORT:-null}" \
    "$(json_str_or_null "$META_SOURCE")" "$(json_str_or_null "$META_SOURCE_SNAPSHOT")" "$(json_str_or_null "$META_CREATED")" \
    "$(json_str_or_null "$uri")" "$(json_str_or_null "$META_OWNER")" "$META_PROTECTED" "$(json_str_or_null "$META_EXPIRES")"
}

# Clients verify the host's certificate (spark-pg cert).
instance_uri() {
  printf 'postgresql://spark@%s:%s/spark?sslmode=verify-full' "$(url_host "$(public_host)")" "$META_PORT"
}
