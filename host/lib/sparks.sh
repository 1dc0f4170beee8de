# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the verbs that source this file
# Helpers every Sparks host tool (spark-pg, spark-dev, spark-skills) shares. Sourced, never run: each tool's own
# library sets SPARK_TOOL (its name), RUN_DIR (its root-only lock directory) and, for the btrfs
# helpers, ROOT (its directory on the pool), then sources this file.
#
# A verb is libexec/TOOL-VERB; its `# Summary:` and `# Usage:` lines are its help.

SPARK_TOOL_HOME=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
SPARK_VERB=${0##*/"$SPARK_TOOL"-}
# Bound in seconds on waiting for a lock.
LOCK_TIMEOUT=${LOCK_TIMEOUT:-60}

# Every failure ends here: one line on stderr, non-zero exit.
die() {
  printf '%s %s: %s\n' "$SPARK_TOOL" "$SPARK_VERB" "$*" >&2
  exit 1
}

# Quote a string for a JSON document (validated values, and PEM's newlines).
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
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
# When the verb began: ready_ms counts from here.
STARTED_MS=$(now_ms)

# read_conf FILE HANDLER: FILE's KEY=value lines, read as data, never sourced: blank lines and
# comments skipped, one pair of quotes around a value dropped. HANDLER KEY VALUE WHERE runs for
# each, in this shell (WHERE is FILE:LINE, for its messages).
read_conf() {
  local conf=$1 handler=$2 line key value n=0
  [ -r "$conf" ] || die "cannot read config $conf"
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
    [[ $line =~ ^([A-Z_]+)=(.*)$ ]] || die "$conf:$n: not a KEY=value line"
    key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
    "$handler" "$key" "$value" "$conf:$n"
  done <"$conf"
}

# plain_path VALUE KEY WHERE: VALUE is an absolute path without . or .. parts or a trailing /.
plain_path() {
  [[ $1 =~ ^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$ && ! $1 =~ (^|/)\.\.?(/|$) ]] || die "$3: $2 must be a plain absolute path"
}

# Untrusted text made safe to echo in an error line.
printable() {
  local s=${1:0:64}
  printf '%s' "${s//[^[:alnum:][:punct:] ]/?}"
}

valid_ipv4() {
  local IFS=. o
  [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  for o in $1; do ((10#$o <= 255)) || return 1; done
}

valid_ipv6() {
  [[ $1 =~ ^[0-9A-Fa-f:]{2,39}$ && $1 == *:*:* ]]
}

# A host name (RFC 1123 labels, lower case); the last label starts with a letter, so a mistyped
# IPv4 address is never taken for a name.
valid_dns_name() {
  local label='[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?'
  ((${#1} <= 253)) && [[ $1 =~ ^($label\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$ ]]
}

valid_address() {
  valid_ipv4 "$1" || valid_ipv6 "$1" || valid_dns_name "$1"
}

valid_cidr() {
  local addr=${1%/*} bits=${1##*/}
  [[ $1 == */* && $bits =~ ^[0-9]{1,3}$ ]] || return 1
  if valid_ipv4 "$addr"; then ((10#$bits <= 32)); else valid_ipv6 "$addr" && ((10#$bits <= 128)); fi
}

# ensure_root_only_dir DIR: DIR made if absent, and refused unless it is root's and 0700 (so no
# other user can open what is in it), a symlink above all.
ensure_root_only_dir() {
  [ -e "$1" ] || [ -L "$1" ] || mkdir -m 0700 "$1" 2>/dev/null || true
  if [ -L "$1" ] || [ ! -d "$1" ] || [ "$(stat -c '%u %a' "$1")" != "0 700" ]; then
    die "$1 is not a root-only directory (root's, 0700, not a symlink); refusing to use it"
  fi
}

# RUN_DIR holds the locks: root-only, so no other user can open (and so hold) one.
ensure_run_dir() { ensure_root_only_dir "$RUN_DIR"; }

# The allocation lock serialises name checks, port choice and subvolume creation across verbs.
take_lock() {
  ensure_run_dir
  exec {LOCK_FD}>>"$RUN_DIR/alloc.lock"
  flock -w "$LOCK_TIMEOUT" "$LOCK_FD" || die "timed out waiting for $RUN_DIR/alloc.lock"
}

release_lock() {
  exec {LOCK_FD}>&-
}

# NAME's own lock, held by a verb that creates, adopts or destroys NAME for its whole run (taken
# before the allocation lock). The kernel drops it when its holder dies, so a held lock means a
# live creator, and a partial instance whose lock is free was left by a dead one.
take_name_lock() {
  ensure_run_dir
  exec {NAME_LOCK_FD}>>"$RUN_DIR/$1.lock"
  flock -w "$LOCK_TIMEOUT" "$NAME_LOCK_FD" || die "timed out waiting for '$1' (another $SPARK_TOOL is changing it)"
}

# True while another process holds NAME's lock (so a partial NAME is still being made).
name_busy() {
  local fd busy=1
  [ -O "$RUN_DIR" ] && [ -f "$RUN_DIR/$1.lock" ] || return 1
  exec {fd}<"$RUN_DIR/$1.lock"
  flock -n -s "$fd" || busy=0
  exec {fd}<&-
  return "$busy"
}

# The steps a verb passes. Fault injection for the tests: SPARK_PG_FAULT=STEP (SPARK_DEV_FAULT for
# spark-dev) makes the verb kill -9 itself at that step, as an OOM kill or a crash would, leaving
# what it made so far; honoured for root only. SPARK_PG_TIMING=1 (SPARK_DEV_TIMING...) prints
# each step's time since the verb began on stderr, for the benches.
VERB_STARTED_US=${EPOCHREALTIME/./}
fault_point() {
  local var=${SPARK_TOOL^^}
  var=${var//-/_}
  local fault=${var}_FAULT timing=${var}_TIMING
  if [ "${!fault:-}" = "$1" ] && ((EUID == 0)); then kill -9 $$; fi
  [ "${!timing:-}" != 1 ] || printf '%s: %s at %d ms\n' "$SPARK_TOOL" "$1" $(((${EPOCHREALTIME/./} - VERB_STARTED_US) / 1000)) >&2
}

# A subvolume's root directory is inode 256 on btrfs.
is_subvolume() {
  [ ! -L "$1" ] && [ "$(stat -c %i "$1" 2>/dev/null)" = 256 ]
}

# Writes stdin to FILE through a temp file made beside it with O_EXCL, then renamed over FILE:
# readers see the old file or the new one, never part of one, and nothing anyone planted next to
# FILE (a FILE.tmp symlink, say) is followed. Runs in the caller's identity; see write_file.
atomic_write() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX") || return 1
  if cat >"$tmp" && chmod "$2" "$tmp" && mv -fT "$tmp" "$1"; then return 0; fi
  rm -f "$tmp"
  return 1
}

# write_file FILE MODE [COMMAND...]: stdin to FILE atomically. Root writes only into root's
# directories; a file inside a data directory is written by its owner: COMMAND is as_postgres.
# A failure is one error line, a full pool named as such.
write_file() {
  local file=$1 mode=$2 err
  shift 2
  if (($#)); then
    err=$("$@" bash -c "$(declare -f atomic_write)"'; atomic_write "$@"' atomic_write "$file" "$mode" 2>&1)
  else
    err=$(atomic_write "$file" "$mode" 2>&1)
  fi || {
    [[ $err == *"No space left"* ]] && die "pool full: cannot write $file"
    die "cannot write $file: $(printf '%s\n' "$err" | tail -n 1)"
  }
}

new_id() { cat /proc/sys/kernel/random/uuid; }

utc_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

usage_error() {
  die "usage: $(sed -n 's/^# Usage: //p' "$0" | head -n 1)"
}

# parse_args "OPTIONS" MIN MAX ARGS...: each allowed option seen sets OPT[option] (to 1, or for an
# option listed as --opt= to its value, given as --opt VALUE or --opt=VALUE); the rest go to
# ARGS, of which there must be MIN to MAX. Anything else is a usage error.
declare -A OPT=()
ARGS=()
parse_args() {
  local allowed=" $1 " min=$2 max=$3 arg
  shift 3
  while (($#)); do
    arg=$1
    shift
    if [[ $arg == --*=* && $allowed == *" ${arg%%=*}= "* ]]; then
      OPT[${arg%%=*}]=${arg#*=}
    elif [[ $arg == -* && $allowed == *" $arg= "* ]]; then
      (($#)) || usage_error
      OPT[$arg]=$1
      shift
    elif [[ $arg == -* ]]; then
      [[ $allowed == *" $arg "* ]] || usage_error
      OPT[$arg]=1
    else
      ARGS+=("$arg")
    fi
  done
  ((${#ARGS[@]} >= min && ${#ARGS[@]} <= max)) || usage_error
}

opt() { [ -n "${OPT[$1]:-}" ]; }

# Runs a btrfs command; on failure dies with its last line, naming a full pool as such.
btrfs_run() {
  local out
  if ! out=$(btrfs "$@" 2>&1); then
    [[ $out == *"No space left"* ]] && die "pool full: btrfs $1 $2 failed with ENOSPC on $ROOT"
    die "btrfs $1 $2 failed: $(printf '%s\n' "$out" | tail -n 1)"
  fi
}

# install_unit FILE: the tool's static unit (systemd/FILE) in /etc/systemd/system, put back
# through a temp file and a rename when missing or changed; systemd is reloaded only then.
install_unit() {
  local ours=$SPARK_TOOL_HOME/systemd/$1 target=/etc/systemd/system/$1
  cmp -s "$ours" "$target" && return 0
  install -m 0644 "$ours" "$target.tmp"
  mv -f "$target.tmp" "$target"
  systemctl daemon-reload || die "systemctl daemon-reload failed"
}

# An address as a URL's host part: IPv6 in brackets.
url_host() {
  if [[ $1 == *:* ]]; then printf '[%s]' "$1"; else printf '%s' "$1"; fi
}

# check_number OPTION MIN MAX: the option, if given, is a whole number in range.
check_number() {
  local v=${OPT[$1]:-}
  [ -n "$v" ] || return 0
  if [[ ! $v =~ ^[0-9]{1,7}$ ]] || ((10#$v < $2 || 10#$v > $3)); then die "$1 must be a whole number from $2 to $3, not '$(printable "$v")'"; fi
  OPT[$1]=$((10#$v))
}

# SSH public keys from stdin, one per line (blank lines skipped), each checked.
read_keys() {
  local line n=0 out=''
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*$ ]] && continue
    [[ $line =~ ^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com)\ [A-Za-z0-9+/]+={0,2}(\ [[:print:]]*)?$ ]] ||
      die "line $n of the keys on stdin is not an SSH public key"
    out+=$line$'\n'
  done
  printf '%s' "$out"
}

# ensure_ssh_key FILE COMMENT: an ed25519 key pair at FILE (root-only), made once: under a lock,
# since verbs run side by side and each authorizes the key it finds.
ensure_ssh_key() {
  local key=$1 fd
  [ -s "$key" ] && [ -s "$key.pub" ] && return 0
  ensure_run_dir
  exec {fd}>>"$RUN_DIR/${key##*/}.lock"
  flock -w "$LOCK_TIMEOUT" "$fd" || die "timed out waiting for $RUN_DIR/${key##*/}.lock"
  if [ ! -s "$key" ] || [ ! -s "$key.pub" ]; then
    rm -f "$key" "$key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$key" </dev/null >/dev/null || die "cannot make the key $key"
  fi
  exec {fd}>&-
}

# --- the help and version verbs -----------------------------------------------------------------

# `TOOL help [VERB]`: the verbs with their summaries, or one verb's comment block.
help_verb() {
  (($# <= 1)) || usage_error
  local file
  if (($# == 0)); then
    printf 'Usage: %s VERB [ARGS...]\n\nVerbs:\n' "$SPARK_TOOL"
    for file in "$SPARK_TOOL_HOME/libexec/$SPARK_TOOL"-*; do
      printf '  %-12s %s\n' "${file##*/"$SPARK_TOOL"-}" "$(sed -n 's/^# Summary: //p' "$file")"
    done
    printf '\nSee '\''%s help VERB'\'' for one verb.\n' "$SPARK_TOOL"
    return 0
  fi
  [[ $1 =~ ^[a-z][a-z-]{0,19}$ && -f $SPARK_TOOL_HOME/libexec/$SPARK_TOOL-$1 ]] || die "no such verb '$(printable "$1")'"
  # Usage line and the help paragraph below it: the leading comment block after the shebang.
  sed -n '2,/^[^#]/{/^#/!q; /^# Summary:/d; s/^# \{0,1\}//; p}' "$SPARK_TOOL_HOME/libexec/$SPARK_TOOL-$1"
}

# `TOOL version [--json]`: the tools' VERSION.
version_verb() {
  parse_args --json 0 0 "$@"
  local version
  read -r version <"$SPARK_TOOL_HOME/VERSION"
  if opt --json; then printf '{"version":%s}\n' "$(json_str "$version")"; else printf '%s\n' "$version"; fi
}
