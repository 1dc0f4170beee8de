# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the verbs that source this file
# Helpers of the spark-redis verbs. Sourced, never run. What spark-redis shares with spark-pg
# (names, records, locks, ports, units, the create path) is in instances.sh.
#
# An instance NAME is the btrfs subvolume $SPARK_REDIS_ROOT/NAME (root's, 0755) holding:
#   data/               the redis user's: redis.conf, users.acl (the ACL) and appendonlydir/ (the
#                       AOF; with appendfsync always, fsynced before each reply, so a snapshot
#                       taken at any moment holds every write acknowledged before it)
#   spark-redis.meta    the record instances.sh reads and writes
#   spark-redis.secret  root's only (0600): ADMIN_PASSWORD, the password of user spark-admin that
#                       spark-redis itself logs in with, and SPARK_HASH, the SHA-256 of user spark's
# The systemd unit spark-redis@NAME runs its redis-server. Locks live in the root-only $RUN_DIR.

SPARK_TOOL=spark-redis
REDIS_CLI=/usr/bin/redis-cli
RUN_DIR=/run/spark-redis
SERVICE_USER=redis
PID_FILE=redis.pid
# Redis's warnings ("PID:ROLE DATE # text") and its config errors.
UNIT_FAILURE_RE=' # |FATAL'
PORT_SOCKET_PREFIX=''
# shellcheck source=../lib/instances.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/instances.sh"
# /etc/sparks/spark-redis.conf (or $SPARK_REDIS_CONF): the keys of instances.sh (SPARK_REDIS_ROOT,
# SPARK_REDIS_PORTS, SPARK_REDIS_LISTEN, SPARK_REDIS_MIN_FREE_MB), and:
#   SPARK_REDIS_APPENDFSYNC  always (default: the AOF fsynced before each reply, so a fork or a
#                            crash keeps every acknowledged write) or everysec (Redis's default:
#                            about 10x the write throughput; a fork holds every write Redis has
#                            written out, which under a disk stall of over a second may miss
#                            some it acknowledged, and a crash may lose the last second)
APPENDFSYNC=always

tool_conf_key() {
  case $1 in
    SPARK_REDIS_APPENDFSYNC)
      [[ $2 =~ ^(always|everysec)$ ]] || die "$3: SPARK_REDIS_APPENDFSYNC must be always or everysec, not '$(printable "$2")'"
      APPENDFSYNC=$2 ;;
    *) die "$3: unknown key $1" ;;
  esac
}

as_redis() { as_service_user "$@"; }

secret_file() { printf '%s/%s/spark-redis.secret' "$ROOT" "$1"; }

# NAME's secrets into SECRET_ADMIN_PASSWORD and SECRET_SPARK_HASH ('' where missing).
read_secrets() {
  SECRET_ADMIN_PASSWORD='' SECRET_SPARK_HASH=''
  [ -f "$(secret_file "$1")" ] || return 0
  read_record "$(secret_file "$1")" SECRET ADMIN_PASSWORD SPARK_HASH
  [[ $SECRET_ADMIN_PASSWORD =~ ^[0-9a-f]{48}$ ]] || SECRET_ADMIN_PASSWORD=''
  [[ $SECRET_SPARK_HASH =~ ^[0-9a-f]{64}$ ]] || SECRET_SPARK_HASH=''
}

new_admin_password() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

# write_access NAME: NAME's secret file and ACL from SECRET_* as read (read_secrets, or cleared
# for a new set): an admin password made if there is none, user spark's hash from PASSWORD if
# one is given. A fork clears them first, before it first starts, so nothing that logged in to
# its source logs in to it.
write_access() {
  [ -n "$SECRET_ADMIN_PASSWORD" ] || SECRET_ADMIN_PASSWORD=$(new_admin_password)
  [ -z "$PASSWORD" ] || SECRET_SPARK_HASH=$(password_hash)
  write_secrets "$1"
  write_acl "$1"
}

# new_access NAME: NAME's own admin password, and user spark the password PASSWORD (off if empty).
new_access() {
  SECRET_ADMIN_PASSWORD='' SECRET_SPARK_HASH=''
  write_access "$1"
}

# The SHA-256 of PASSWORD as an ACL stores it (#HASH): the password itself never reaches a file,
# argv or Redis. printf is a builtin, so it is in no process's argv either.
password_hash() {
  local hash
  hash=$(printf '%s' "$PASSWORD" | sha256sum) || die "could not hash the password"
  printf '%s' "${hash:0:64}"
}

write_secrets() {
  printf 'ADMIN_PASSWORD=%s\nSPARK_HASH=%s\n' "$SECRET_ADMIN_PASSWORD" "$SECRET_SPARK_HASH" |
    write_file "$(secret_file "$1")" 0600
}

# The ACL from the secrets read: the default user is off; spark-admin (spark-redis's own) may do
# everything; spark, the engineers' user, everything but @admin (CONFIG, ACL SETUSER, SHUTDOWN,
# DEBUG, REPLICAOF, MONITOR...), and is off without a password.
write_acl() {
  local spark='off'
  [ -z "$SECRET_SPARK_HASH" ] || spark="on #$SECRET_SPARK_HASH"
  [ -n "$SECRET_ADMIN_PASSWORD" ] || die "'$1' has no admin password in $(secret_file "$1")"
  {
    printf 'user default off resetpass -@all\n'
    printf 'user spark-admin on #%s ~* &* +@all\n' "$(PASSWORD=$SECRET_ADMIN_PASSWORD password_hash)"
    printf 'user spark %s ~* &* +@all -@admin\n' "$spark"
  } | write_file "$(data_dir "$1")/users.acl" 0600 as_redis
}

# redis.conf, written as redis into data/. Redis binds every listen address (names resolved).
write_redis_conf() {
  local name=$1 port=$2 data
  data=$(data_dir "$name")
  write_file "$data/redis.conf" 0600 as_redis <<EOF
# Written by spark-redis for instance $name; rewritten on fork and start.
port $port
bind ${LISTEN[*]}
# Every user logs in with a password (users.acl); the addresses are bound explicitly.
protected-mode yes
dir $data
pidfile $data/$PID_FILE
aclfile $data/users.acl
# The AOF is the only persistence (SPARK_REDIS_APPENDFSYNC): with always, fsynced before each
# reply, so a snapshot of the subvolume at any moment holds every acknowledged write (a
# half-written last command is dropped on load).
appendonly yes
appenddirname appendonlydir
appendfsync $APPENDFSYNC
aof-use-rdb-preamble yes
aof-load-truncated yes
save ""
supervised systemd
daemonize no
logfile ""
always-show-logo no
enable-protected-configs no
enable-debug-command no
enable-module-command no
EOF
}

# Runs redis-cli as spark-admin on loopback, port META_PORT (SECRET_* read): the password goes in
# the environment (REDISCLI_AUTH), which only root can read, never in argv. -e: an error reply
# (or a refused login) fails, with redis-cli's words on stderr.
redis_admin() {
  REDISCLI_AUTH=$SECRET_ADMIN_PASSWORD timeout 30 "$REDIS_CLI" -e --no-auth-warning --user spark-admin \
    -h 127.0.0.1 -p "$META_PORT" "$@"
}

# Brings up a whole instance (META_* read), for start and adoption: redis.conf and users.acl
# rewritten as this spark-redis writes them, user spark's password set if PASSWORD is, the unit
# enabled and running (a failed one, a crash loop past its limit, started afresh), and a server
# that was running already made to read its ACL again.
bring_up_instance() {
  local name=$1
  read_secrets "$name"
  write_access "$name"
  write_redis_conf "$name" "$META_PORT"
  ensure_unit
  systemctl reset-failed "$(unit_name "$name")" >/dev/null 2>&1 || true
  start_unit "$name"
  # A server that was running already takes the settings that can change without a restart.
  redis_admin ACL LOAD >/dev/null 2>&1 && redis_admin CONFIG SET appendfsync "$APPENDFSYNC" >/dev/null 2>&1 ||
    die "could not finish '$name' (ACL LOAD, appendfsync)"
}

# No password in it: clients add spark's.
instance_uri() {
  printf 'redis://spark@%s:%s' "$(url_host "$(public_host)")" "$META_PORT"
}

# "USED_MEMORY KEYS" of NAME's server (bytes; keys over all databases), or "null null" when it
# does not answer. SECRET_* and META_PORT read.
memory_and_keys() {
  local info memory='' keys=0 line
  if info=$(redis_admin INFO 2>/dev/null); then
    while IFS= read -r line; do
      line=${line%$'\r'}
      [[ $line =~ ^used_memory:([0-9]+)$ ]] && memory=${BASH_REMATCH[1]}
      [[ $line =~ ^db[0-9]+:keys=([0-9]+), ]] && keys=$((keys + BASH_REMATCH[1]))
    done <<<"$info"
  fi
  if [ -n "$memory" ]; then printf '%s %s' "$memory" "$keys"; else printf 'null null'; fi
}
