# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the verbs that source this file
# Helpers of the spark-pg verbs. Sourced, never run. What spark-pg shares with spark-redis
# (names, records, locks, ports, units, the create path) is in instances.sh.
#
# An instance NAME is the btrfs subvolume $SPARK_PG_ROOT/NAME (root's, 0755) holding:
#   data/           the PostgreSQL 15 data directory, WAL included, so one snapshot is consistent;
#                   the postgres user's: root never writes, reads or removes a path inside it
#   spark-pg.meta   KEY=value lines: NAME ID PORT SOURCE SOURCE_ID SOURCE_SNAPSHOT CREATED OWNER
#                   PROTECTED EXPIRES STATUS
# Its named snapshots are read-only subvolumes $SPARK_PG_ROOT/.snapshots/NAME/SNAP, each with
# SNAP.meta beside it (KEY=value: NAME INSTANCE INSTANCE_ID CREATED OWNER STATUS); the dot keeps
# them out of the instance names. The systemd unit spark-pg@NAME runs its postmaster. Locks live
# in the root-only $RUN_DIR, the host's TLS key and certificate in $TLS_DIR. Nothing else is kept
# anywhere.

SPARK_TOOL=spark-pg
PG_BIN=/usr/lib/postgresql/15/bin
PG_SOCKET_DIR=/run/postgresql
RUN_DIR=/run/spark-pg
SERVICE_USER=postgres
PID_FILE=postmaster.pid
UNIT_FAILURE_RE='FATAL|PANIC'
# A postmaster listening on its socket only still holds its port.
PORT_SOCKET_PREFIX=$PG_SOCKET_DIR/.s.PGSQL.
TLS_DIR=/etc/sparks/tls
TLS_CERT=$TLS_DIR/server.crt
TLS_KEY=$TLS_DIR/server.key
# The names the certificate covers, one per line: compared as written, so no parsing of openssl's text.
TLS_NAMES=$TLS_DIR/server.names
# Bound in seconds: a fork never waits long on its source.
CHECKPOINT_TIMEOUT=30
# fork --ttl: a whole number of minutes, hours or days, up to a year.
TTL_RE='^([1-9][0-9]{0,5})([mhd])$'
TTL_MAX_S=$((366 * 86400))
# shellcheck source=../lib/instances.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/instances.sh"

# --- configuration ----------------------------------------------------------------------------
# /etc/sparks/spark-pg.conf (or $SPARK_PG_CONF): the keys of instances.sh (SPARK_PG_ROOT,
# SPARK_PG_PORTS, SPARK_PG_LISTEN, SPARK_PG_MIN_FREE_MB), and:
#   SPARK_PG_ALLOW        CIDRs admitted over TCP with scram-sha-256, space separated (optional)
#   SPARK_PG_CHECKPOINT_WAL_MB  a running source is checkpointed before a fork or snapshot only
#                         past this much WAL since its last checkpoint (default 16): replaying a
#                         little WAL is cheaper than a checkpoint under write load, a lot is not
ALLOW=() CHECKPOINT_WAL_MB=16

tool_conf_key() {
  local key=$1 value=$2 where=$3 c
  case $key in
    SPARK_PG_ALLOW)
      read -r -a ALLOW <<<"$value"
      for c in "${ALLOW[@]}"; do valid_cidr "$c" || die "$where: bad CIDR '$(printable "$c")'"; done ;;
    SPARK_PG_CHECKPOINT_WAL_MB)
      [[ $value =~ ^[0-9]{1,6}$ ]] || die "$where: SPARK_PG_CHECKPOINT_WAL_MB must be a number of MB"
      CHECKPOINT_WAL_MB=$((10#$value)) ;;
    *) die "$where: unknown key $key" ;;
  esac
}

# --- starting an instance ---------------------------------------------------------------------

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

# A spark-pg instance's own JSON fields (instance_json): source_snapshot, protected, expires.
instance_json_fields() {
  printf ',"source_snapshot":%s,"protected":%s,"expires":%s' \
    "$(json_str_or_null "$META_SOURCE_SNAPSHOT")" "$META_PROTECTED" "$(json_str_or_null "$META_EXPIRES")"
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
  if ! server_running "$name"; then printf false; return 0; fi
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
  if server_running "$name"; then
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
  server_running "$name" && die "'$name' is running outside systemd; stop that postmaster first"
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

# Under NAME's lock (lock_instance), what a killed rollback or reset left undone: its old data
# aside ($ROOT/.replaced-NAME-ID) goes back, and the new data, if any, goes (the verb did not
# happen; it can be run again), and NAME runs.
recover_instance() {
  local name=$1 dir aside
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

# Runs a command as the postgres OS user (SERVICE_USER).
as_postgres() { as_service_user "$@"; }

# psql as the postgres OS user over the socket; SQL on stdin, output captured by the caller.
pg_sql() {
  local port=$1 db=$2
  PGCONNECT_TIMEOUT=5 as_postgres "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
    -h "$PG_SOCKET_DIR" -p "$port" -d "$db" -f -
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


# Clients verify the host's certificate (spark-pg cert).
instance_uri() {
  printf 'postgresql://spark@%s:%s/spark?sslmode=verify-full' "$(url_host "$(public_host)")" "$META_PORT"
}
