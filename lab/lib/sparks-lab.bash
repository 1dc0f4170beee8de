# Shared names, paths and helpers for the sparks-lab verbs. Sourced, never run.
# shellcheck shell=bash disable=SC2034 # the constants are used by the verbs that source this

shopt -s inherit_errexit

SPARKS_LAB_ROOT="$(cd "${BASH_SOURCE[0]%/*}/../.." && pwd -P)"
LAB_LIBEXEC="$SPARKS_LAB_ROOT/lab/libexec"
LAB_DIR="$(realpath -m "${SPARKS_LAB_DIR:-$SPARKS_LAB_ROOT/.lab}")"
LAB_CACHE="$(realpath -m "${XDG_CACHE_HOME:-$HOME/.cache}/sparks-lab")"
LAB_POOL="$LAB_DIR/pool"               # btrfs mount: base-TAG (read-only) and hosts/NAME snapshots
LAB_POOL_IMG="$LAB_DIR/images/pool.img"
LAB_RUN="$LAB_DIR/run"                 # lab-wide records: forwarder PIDs, /run/netns marker
LAB_KEY="$LAB_DIR/ssh/id_ed25519"
LAB_KNOWN_HOSTS="$LAB_DIR/ssh/known_hosts"
LAB_HOST_KEY_TYPES="rsa ecdsa ed25519"   # a stock Debian sshd's host keys, recorded for each host
LAB_BRIDGE=sparkbr0
LAB_NET=10.89.42                       # .1 the machine, .2-.10 mirror forwarders, .11+ hosts
LAB_GATEWAY="$LAB_NET.1"
LAB_MAX_HOSTS=100
LAB_MIRROR_SOURCES=/etc/apt/sources.list.d/debian.sources
# The bridge, the sparks-* namespaces and the addresses exist once per machine: this file names
# the lab directory that holds them, so a second checkout's lab neither takes nor sweeps them.
LAB_CLAIM=/run/sparks-lab/owner

# Paths end up in JSON and on command lines unquoted by other programs: keep them plain.
if [[ ! "$LAB_DIR$LAB_CACHE" =~ ^[A-Za-z0-9._/+@-]+$ ]]; then
  echo "sparks-lab: lab directory '$LAB_DIR' or cache '$LAB_CACHE' has unsupported characters" >&2
  exit 1
fi

lab_die() {
  echo "sparks-lab: $*" >&2
  exit 1
}

lab_log() {
  echo "sparks-lab: $*" >&2
}

lab_require_root() {
  [[ $EUID -eq 0 ]] || lab_die "must run as root (it creates network namespaces, loop devices and containers)"
}

host_name() { echo "spark-$1"; }
host_index() { echo "${1#spark-}"; }
host_addr() { echo "$LAB_NET.$((10 + $1))"; }
host_netns() { echo "sparks-$1"; }
host_veth() { echo "sparks-v$1"; }
host_dir() { echo "$LAB_DIR/hosts/$1"; }
host_root() { echo "$LAB_POOL/hosts/$1"; }

# Names of hosts with state in the lab, in index order.
lab_recorded_hosts() {
  local d
  for d in "$LAB_DIR"/hosts/spark-*; do
    if [[ -d $d ]]; then echo "${d##*/}"; fi
  done | sort -t- -k2,2n
}

# Holds the machine-wide lab lock for the life of the calling verb: there is one bridge and one
# set of names per machine, so ups and downs of every checkout take turns. Children must be
# started with 9>&- so a crashed verb's survivors never keep it. A verb run by a verb that holds
# the lock (up runs base) inherits it.
lab_lock() {
  if [[ ${SPARKS_LAB_LOCK_HELD:-} != 1 ]]; then
    mkdir -p /run/lock
    exec 9>/run/lock/sparks-lab.lock
    if ! flock -n 9; then
      lab_log "waiting for another sparks-lab up/down to finish"
      flock -w 600 9 || lab_die "another sparks-lab up/down has held /run/lock/sparks-lab.lock for 10 minutes"
    fi
    export SPARKS_LAB_LOCK_HELD=1
  fi
  take_down_dead_owner
}

# A lab that holds the machine-wide names but runs no process any more (what ran it was killed
# without its down: names, mounts and loop devices outlive their processes) holds them for
# nobody: every verb that takes the lock takes that lab down first.
take_down_dead_owner() {
  local owner
  owner="$(lab_names_owner)"
  [[ -n $owner && $owner != "$LAB_DIR" ]] || return 0
  lab_running "$owner" && return 0
  lab_log "the lab in $owner has no host or forwarder running (what ran it ended without its down): taking it down"
  SPARKS_LAB_DIR="$owner" "$LAB_LIBEXEC/sparks-lab-down"
}

lab_unlock() {
  flock -u 9
  exec 9>&-
  unset SPARKS_LAB_LOCK_HELD
}

# Whether PID runs (a zombie has exited and only waits for its parent).
pid_alive() {
  local state
  state="$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)" || return 1
  [[ -n $state && $state != Z ]]
}

# Prints PID when it is alive and its command line contains NEEDLE (guards against PID reuse).
pid_matching() {
  local pid=$1 needle=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$needle" || return 1
  echo "$pid"
}

# PIDs whose command line contains NEEDLE, the caller's own helpers excluded by re-checking.
# A space at the end of NEEDLE ends an argument there ("hosts/spark-1 " is not spark-10).
pids_with_arg() {
  local file pid
  { grep -lsaF -- "${1% }" /proc/[0-9]*/cmdline || true; } | while IFS= read -r file; do
    pid="${file#/proc/}" pid="${pid%/cmdline}"
    pid_matching "$pid" "$1" || true
  done
}

# Whether the lab in DIR still runs: a host of it, or a mirror forwarder (those belong to the lab
# that holds the names, and run from its up to its down, even while every host is stopped). A
# lab whose processes all ended without a down (the session that ran it was killed) holds its
# names, mounts and loop devices for nobody.
lab_running() {
  [[ -n $(pids_with_arg "--directory=$1/pool/hosts/") || -n $(pids_with_arg ",bind=$LAB_NET.") ]]
}

# The nspawn process of host NAME, if running.
host_nspawn_pid() {
  local pidfile
  pidfile="$(host_dir "$1")/nspawn.pid"
  [[ -s $pidfile ]] || return 1
  pid_matching "$(<"$pidfile")" "--directory=$(host_root "$1") "
}

# The container's PID 1 (systemd): nspawn's child in the new PID namespace.
host_leader_pid() {
  local nspawn=$1 child
  local children=()
  read -r -a children < <(cat "/proc/$nspawn/task/"*/children 2>/dev/null) || true
  for child in "${children[@]+"${children[@]}"}"; do
    if [[ $(readlink "/proc/$child/ns/pid") != "$(readlink "/proc/$nspawn/ns/pid")" ]]; then
      echo "$child"
      return 0
    fi
  done
  return 1
}

# The lab directory that holds the machine-wide names, if one does.
lab_names_owner() {
  cat "$LAB_CLAIM" 2>/dev/null || true
}

# Whether any of the machine-wide names exists.
lab_names_in_use() {
  ip link show dev "$LAB_BRIDGE" >/dev/null 2>&1 || ip netns list | grep -q '^sparks-'
}

lab_ssh_opts() {
  printf '%s\n' -i "$LAB_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o "UserKnownHostsFile=$LAB_KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR
}

# http(s) origins (scheme://host[:port]) of the machine's Debian mirror, comments skipped.
mirror_origins() {
  local origins
  [[ -r $LAB_MIRROR_SOURCES ]] || lab_die "no $LAB_MIRROR_SOURCES to read the Debian mirror from"
  origins="$(grep -v '^[[:space:]]*#' "$LAB_MIRROR_SOURCES" | grep -oE 'https?://[^/[:space:]]+' | sort -u)" || true
  [[ -n $origins ]] || lab_die "no http(s) mirror in $LAB_MIRROR_SOURCES"
  echo "$origins"
}

# The machine's apt settings that its mirror needs (a snapshot mirror has expired Release files).
mirror_apt_options() {
  apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date) ' || true
}

# Starts host NAME's container from what `up` made (rootfs, disk, device nodes, network namespace).
# Its own session: a host outlives the verb that started it, and `down` stops it by PID.
boot_host() {
  local name=$1 root dir ns
  root="$(host_root "$name")" dir="$(host_dir "$name")" ns="$(host_netns "$name")"
  # /proc/sys/net writable (API_VFS_WRITABLE=network: only it), as on a stock server, where root
  # sets its network sysctls (dev containers are routed through the host). Net sysctls are per
  # network namespace, so this reaches the host's own, never the machine's.
  # The unified cgroup hierarchy, as a stock bookworm server has: under the legacy one, systemd in
  # a host loses track of its cgroups (umount fails with 219/CGROUP, the user manager hangs in its
  # stop for two minutes and every new ssh session waits for it).
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_NSPAWN_API_VFS_WRITABLE=network setsid unshare --mount --propagation private -- "$SPARKS_LAB_ROOT/lab/lib/boot-host" \
    "$root" "$dir" "/run/netns/$ns" -- systemd-nspawn --boot --directory="$root" --machine="$name" \
    --register=no --keep-unit --link-journal=no --console=read-only \
    --network-namespace-path="/run/netns/$ns" --capability=all --resolv-conf=off \
    --bind="$(<"$dir/loop"):/dev/vdb" --bind="$dir/kvm:/dev/kvm" --bind="$dir/btrfs-control:/dev/btrfs-control" \
    </dev/null >>"$dir/console.log" 2>&1 9>&- &
  echo "$!" >"$dir/nspawn.pid"
  # How often this machine was booted: a stopped host's next boot is news to whoever saw it run.
  echo "$(($(cat "$dir/boots" 2>/dev/null || echo 0) + 1))" >"$dir/boots"
}

# Waits until every host answers ssh with its pinned key and systemd has finished booting.
wait_ready() {
  local boot_timeout="${SPARKS_LAB_BOOT_TIMEOUT:-120}"
  [[ $boot_timeout =~ ^[0-9]+$ ]] || lab_die "SPARKS_LAB_BOOT_TIMEOUT '$boot_timeout' is not a number of seconds"
  local deadline=$((SECONDS + boot_timeout)) pending=("$@") left name state failed
  local -a ssh_opts
  mapfile -t ssh_opts < <(lab_ssh_opts)
  while [[ ${#pending[@]} -gt 0 ]]; do
    left=()
    for name in "${pending[@]}"; do
      pid_alive "$(<"$(host_dir "$name")/nspawn.pid")" ||
        lab_die "$name stopped while booting; see $(host_dir "$name")/console.log"
      if state="$(ssh "${ssh_opts[@]}" -o ConnectTimeout=2 "root@$(host_addr "$(host_index "$name")")" \
        systemctl is-system-running --wait 2>/dev/null)" || [[ -n $state ]]; then
        if [[ $state != running ]]; then
          failed="$(ssh "${ssh_opts[@]}" "root@$(host_addr "$(host_index "$name")")" \
            systemctl list-units --failed --plain --no-legend | cut -d' ' -f1 | paste -sd' ')"
          lab_die "$name booted '$state' (failed units: ${failed:-none})"
        fi
      else
        left+=("$name")
      fi
    done
    pending=("${left[@]+"${left[@]}"}")
    [[ ${#pending[@]} -eq 0 ]] && break
    ((SECONDS < deadline)) || lab_die "not ready after ${boot_timeout}s: ${pending[*]} (see .lab/hosts/NAME/console.log)"
    sleep 0.2
  done
}
