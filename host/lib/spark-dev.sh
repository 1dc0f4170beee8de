# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the verbs that source this file
# Helpers shared by the spark-dev verbs. Sourced, never run.
#
# Everything lives under $SPARK_DEV_ROOT on the btrfs pool (root's, 0700: container roots hold
# setuid files and other users' homes, so no host user may walk in):
#   images/ID       read-only base images (a Debian root with systemd, sshd, sudo, tmux, python3),
#                   built once per recipe; ID is the recipe's content hash
#   NAME/           one directory per container, root's, 0700:
#     root          the container's root: a writable snapshot of its image, replaceable
#     home          its dev user's home (/home/dev inside): a subvolume of its own that outlives
#                   the root, a stop, a re-creation from another image and, if asked, a destroy
#     kvm           the container's own /dev/kvm node, owned by its user namespace's root:kvm
#     sshkeys/         its owner's public keys, bind-mounted read-only for sshd
#     settings/        what the host tells it, bind-mounted read-only at /etc/sparks: skills.conf
#                      (SKILLS_URL=..., for the skills sync; absent when there is no skills repo)
#     spark-dev.meta   KEY=value lines: NAME OWNER IMAGE ADDRESS UID_BASE HOME_ID CPUS MEMORY_MB
#                      IDLE_MINUTES PACKAGES SKILLS_URL CREATED STATUS
#   verify_key      the host's key for `spark-dev verify`, which every container admits (restricted)
# The systemd unit spark-dev@NAME runs it (systemd-nspawn, systemd inside). Locks live in the
# root-only $RUN_DIR; nothing else is kept anywhere.

SPARK_TOOL=spark-dev
UNIT_DIR=/etc/systemd/system
SYSTEM_CONF=/etc/sparks/spark-dev.conf
RUN_DIR=/run/spark-dev
# Container names become interface names (ve-NAME, at most 15 bytes) and host names.
NAME_RE='^[a-z][a-z0-9-]{0,10}[a-z0-9]$'
OWNER_RE='^[A-Za-z0-9._/:-]{1,200}$'
IMAGE_RE='^bookworm-[0-9a-f]{16}$'
PACKAGE_RE='^[a-z0-9][a-z0-9+.-]{0,62}$'
# A skills repo's URL: http(s), host (IPv6 in brackets), port, path; nothing a shell or git would
# read as anything else. (']' first in the class is a literal.)
SKILLS_URL_RE='^https?://[][A-Za-z0-9.:@%_~/-]{1,200}$'
# The dev user inside every container, and its user namespace: 65536 ids from UID_BASE, each
# container its own range above everything a host hands out.
DEV_USER=dev
DEV_UID=1000
UID_BASE_FIRST=$((0x60000000))
UID_RANGE=65536
# shellcheck source=sparks.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/sparks.sh"

check_name() {
  [[ $1 =~ $NAME_RE ]] || die "invalid container name '$(printable "$1")' (want ${NAME_RE}: at most 12 characters)"
}

# --- configuration ----------------------------------------------------------------------------
# /etc/sparks/spark-dev.conf (or $SPARK_DEV_CONF): KEY=value lines, read as data, never sourced.
#   SPARK_DEV_ROOT  directory on the btrfs pool holding images and containers

load_config() {
  local conf=${SPARK_DEV_CONF:-$SYSTEM_CONF}
  ROOT=''
  read_conf "$conf" dev_conf_key
  [ -n "$ROOT" ] || die "$conf: SPARK_DEV_ROOT is not set"
  IMAGES=$ROOT/images
}

# One KEY=value of the config, at WHERE (FILE:LINE).
dev_conf_key() {
  case $1 in
    SPARK_DEV_ROOT)
      plain_path "$2" "$1" "$3"
      ROOT=$2 ;;
    *) die "$3: unknown key $1" ;;
  esac
}

# The pool must be mounted and btrfs; ROOT (root's, 0700) is made on first use, and refused if
# it is a symlink or anyone else's.
require_root() {
  local parent=${ROOT%/*}
  if [ ! -e "$ROOT" ] && [ ! -L "$ROOT" ]; then
    [ "$(stat -f -c %T "${parent:-/}" 2>/dev/null)" = btrfs ] || die "$ROOT does not exist and ${parent:-/} is not on btrfs"
    mkdir -m 0700 "$ROOT" || die "cannot create $ROOT"
  fi
  if [ -L "$ROOT" ] || [ ! -d "$ROOT" ] || [ "$(stat -c '%u %a' "$ROOT")" != "0 700" ]; then
    die "$ROOT is not a root-only directory (root's, 0700, not a symlink); refusing to use it"
  fi
  [ "$(stat -f -c %T "$ROOT")" = btrfs ] || die "$ROOT is not on a btrfs filesystem"
  [ -d "$IMAGES" ] || mkdir -m 0700 "$IMAGES"
}

# --- containers -------------------------------------------------------------------------------

ct_dir() { printf '%s/%s' "$ROOT" "$1"; }
meta_file() { printf '%s/%s/spark-dev.meta' "$ROOT" "$1"; }
unit_name() { printf 'spark-dev@%s.service' "$1"; }
limits_dropin() { printf '%s/spark-dev@%s.service.d/limits.conf' "$UNIT_DIR" "$1"; }

# Every container directory under ROOT, whole or not, sorted.
container_names() {
  local d n
  for d in "$ROOT"/*/; do
    n=${d%/}
    n=${n##*/}
    [[ $n =~ $NAME_RE && -f $ROOT/$n/spark-dev.meta ]] && printf '%s\n' "$n"
  done
  return 0
}

# Reads NAME's record into META_* (META_FOUND=no when there is none); never fails on content:
# a value that does not parse leaves its META_* empty and META_PROBLEM set.
read_meta() {
  local file line key value
  file=$(meta_file "$1")
  META_NAME='' META_OWNER='' META_IMAGE='' META_ADDRESS='' META_UID_BASE='' META_HOME_ID='' META_CPUS='' META_MEMORY_MB=''
  META_IDLE_MINUTES='' META_PACKAGES='' META_SKILLS_URL='' META_CREATED='' META_STATUS='' META_PROBLEM='' META_FOUND=no
  [ -f "$file" ] && [ ! -L "$file" ] || return 0
  META_FOUND=yes
  while IFS= read -r line; do
    [[ $line =~ ^([A-Z_]+)=(.*)$ ]] || { META_PROBLEM="bad line in spark-dev.meta"; continue; }
    key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    case $key in
      NAME | OWNER | IMAGE | ADDRESS | UID_BASE | HOME_ID | CPUS | MEMORY_MB | IDLE_MINUTES | PACKAGES | SKILLS_URL | CREATED | STATUS)
        printf -v "META_$key" '%s' "$value" ;;
    esac
  done <"$file"
  [[ $META_UID_BASE =~ ^[0-9]{1,10}$ ]] || { META_PROBLEM="no user namespace range recorded"; META_UID_BASE=''; }
  [[ $META_IMAGE =~ $IMAGE_RE ]] || { META_PROBLEM="no image recorded"; META_IMAGE=''; }
  valid_ipv4 "$META_ADDRESS" || { META_PROBLEM="no address recorded"; META_ADDRESS=''; }
}

# write_meta NAME STATUS, from the META_* values.
write_meta() {
  printf 'NAME=%s\nOWNER=%s\nIMAGE=%s\nADDRESS=%s\nUID_BASE=%s\nHOME_ID=%s\nCPUS=%s\nMEMORY_MB=%s\nIDLE_MINUTES=%s\nPACKAGES=%s\nSKILLS_URL=%s\nCREATED=%s\nSTATUS=%s\n' \
    "$1" "$META_OWNER" "$META_IMAGE" "$META_ADDRESS" "$META_UID_BASE" "$META_HOME_ID" "$META_CPUS" "$META_MEMORY_MB" \
    "$META_IDLE_MINUTES" "$META_PACKAGES" "$META_SKILLS_URL" "$META_CREATED" "$2" | write_file "$(meta_file "$1")" 0600
}

require_container() {
  read_meta "$1"
  [ "$META_FOUND" = yes ] || die "no container named '$1'"
  [ -z "$META_PROBLEM" ] || die "'$1' is broken ($META_PROBLEM); destroy it"
}

# The lowest user namespace range no other container has.
allocate_uid_base() {
  local base=$UID_BASE_FIRST n used=" "
  for n in $(container_names); do
    read_meta "$n"
    [ -z "$META_UID_BASE" ] || used+="$META_UID_BASE "
  done
  while [[ $used == *" $base "* ]]; do base=$((base + UID_RANGE)); done
  printf '%s' "$base"
}

# The container's systemd (its PID 1 on the host), if it runs.
container_leader() {
  local nspawn child
  nspawn=$(systemctl show -P MainPID "$(unit_name "$1")" 2>/dev/null) || return 1
  [[ $nspawn =~ ^[1-9][0-9]*$ ]] || return 1
  local children=()
  read -r -a children < <(cat "/proc/$nspawn/task/"*/children 2>/dev/null) || true
  for child in "${children[@]}"; do
    if [ "$(readlink "/proc/$child/ns/pid")" != "$(readlink "/proc/$nspawn/ns/pid")" ]; then
      printf '%s' "$child"
      return 0
    fi
  done
  return 1
}

# Runs a command inside the running container NAME, as root there (its user namespace's root).
in_container() {
  local name=$1 leader
  shift
  leader=$(container_leader "$name") || die "'$name' is not running"
  # --all also takes the target's root and working directory.
  nsenter --target "$leader" --all -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

# The unit's state as one word: running, stopped, failed or starting.
container_state() {
  local active
  active=$(systemctl show -P ActiveState "$(unit_name "$1")" 2>/dev/null || true)
  case $active in
    active) printf running ;;
    activating | reloading) printf starting ;;
    failed) printf failed ;;
    *) printf stopped ;;
  esac
}

unit_enabled() {
  [ "$(systemctl is-enabled "$(unit_name "$1")" 2>/dev/null || true)" = enabled ]
}

# The JSON object describing a container (meta read): name, state, enabled, address, owner,
# image, limits, idle stop, packages, skills URL, created.
container_json() {
  local name=$1 state enabled=false pkgs='' p
  state=$(container_state "$name")
  unit_enabled "$name" && enabled=true
  for p in $META_PACKAGES; do pkgs+="${pkgs:+,}$(json_str "$p")"; done
  printf '{"name":%s,"state":%s,"enabled":%s,"address":%s,"owner":%s,"image":%s,"cpus":%s,"memory_mb":%s,"idle_minutes":%s,"packages":[%s],"skills_url":%s,"created":%s' \
    "$(json_str "$name")" "$(json_str "$state")" "$enabled" "$(json_str_or_null "$META_ADDRESS")" \
    "$(json_str_or_null "$META_OWNER")" "$(json_str_or_null "$META_IMAGE")" "${META_CPUS:-null}" \
    "${META_MEMORY_MB:-null}" "${META_IDLE_MINUTES:-null}" "$pkgs" "$(json_str_or_null "$META_SKILLS_URL")" "$(json_str_or_null "$META_CREATED")"
}

# --- units ------------------------------------------------------------------------------------

# CPU and memory limits as a drop-in of NAME's unit, applied to a running container at once.
write_limits() {
  local name=$1 dropin props=()
  dropin=$(limits_dropin "$name")
  if [ -z "$META_CPUS$META_MEMORY_MB" ]; then
    [ ! -e "$dropin" ] || { rm -f "$dropin"; rmdir "${dropin%/*}" 2>/dev/null || true; systemctl daemon-reload; }
    props=(CPUQuota= MemoryMax=infinity)
  else
    install -d -m 0755 "${dropin%/*}"
    {
      printf '[Service]\n'
      [ -z "$META_CPUS" ] || printf 'CPUQuota=%s%%\n' "$((META_CPUS * 100))"
      [ -z "$META_MEMORY_MB" ] || printf 'MemoryMax=%sM\n' "$META_MEMORY_MB"
    } | write_file "$dropin" 0644
    systemctl daemon-reload
    props=("CPUQuota=${META_CPUS:+$((META_CPUS * 100))%}" "MemoryMax=${META_MEMORY_MB:+${META_MEMORY_MB}M}")
    [ -n "$META_MEMORY_MB" ] || props[1]=MemoryMax=infinity
  fi
  if [ "$(container_state "$name")" = running ]; then
    systemctl set-property --runtime "$(unit_name "$name")" "${props[@]}" >/dev/null 2>&1 ||
      die "could not apply CPU and memory limits to the running '$name'"
  fi
}

start_container() {
  local name=$1 out
  install_unit spark-dev@.service
  if ! out=$(systemctl enable --now "$(unit_name "$name")" 2>&1); then
    die "'$name' did not start: $(journalctl -u "$(unit_name "$name")" -n 3 --no-pager -o cat 2>/dev/null | tr '\n' ' ')${out:+ ($out)}"
  fi
}

stop_container() {
  systemctl stop "$(unit_name "$1")" 2>/dev/null || true
  systemctl reset-failed "$(unit_name "$1")" 2>/dev/null || true
}

# Deletes a subvolume and, deepest first, every subvolume made inside it (btrfs-progs 6.2 has no
# recursive delete, and a dev may make subvolumes inside a container).
delete_subvolume_tree() {
  local top=$1 fs child
  is_subvolume "$top" || die "$top is not a subvolume; refusing to delete it"
  fs=$(findmnt -n -o TARGET --target "$top")
  # -o: the subvolumes directly below TOP, as paths from the top of the filesystem.
  while read -r child; do
    [ -n "$child" ] && delete_subvolume_tree "$fs/$child"
  done < <(btrfs subvolume list -o "$top" | sed -n 's/^ID [0-9]* gen [0-9]* top level [0-9]* path //p')
  btrfs_run subvolume delete "$top"
}

# --- the base image ---------------------------------------------------------------------------

RECIPE=$SPARK_TOOL_HOME/share/spark-dev/image-recipe
# Files customize_image puts into every image (the skills sync).
IMAGE_FILES=$SPARK_TOOL_HOME/share/spark-dev/image

# RECIPE_SUITE, RECIPE_PACKAGES and IMAGE_ID from the recipe, read as data.
read_recipe() {
  local line hash
  RECIPE_SUITE='' RECIPE_PACKAGES=()
  while IFS= read -r line; do
    case $line in
      SUITE=*) RECIPE_SUITE=${line#SUITE=} ;;
      PACKAGES=*) read -r -a RECIPE_PACKAGES <<<"${line#PACKAGES=}" ;;
    esac
  done <"$RECIPE"
  [ "$RECIPE_SUITE" = bookworm ] || die "$RECIPE: SUITE must be bookworm"
  # The recipe and what customize_image does to it: nothing else of the tool's changes an image.
  hash=$({ cat "$RECIPE"; declare -f customize_image; cat "$IMAGE_FILES"/*; } | sha256sum)
  IMAGE_ID=$RECIPE_SUITE-${hash:0:16}
}

# Removes image ID unless a container starts from it or it is the recipe's current image.
remove_image_if_unused() {
  local id=$1 n
  read_recipe
  [ "$id" != "$IMAGE_ID" ] && is_subvolume "$IMAGES/$id" || return 0
  for n in $(container_names); do
    read_meta "$n"
    [ "$META_IMAGE" != "$id" ] || return 0
  done
  take_name_lock image
  btrfs_run property set "$IMAGES/$id" ro false
  delete_subvolume_tree "$IMAGES/$id"
}

# The image IMAGE_ID, built in IMAGES/.build (a subvolume) and renamed into place read-only.
build_image() {
  local build=$IMAGES/.build sources=() aptopts=() f out
  [ ! -e "$build" ] || delete_subvolume_tree "$build"
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (Debian package mmdebstrap)"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && sources+=("$f")
  done
  ((${#sources[@]})) || die "no apt sources on this host (/etc/apt/sources.list*) to build the image from"
  while IFS= read -r f; do aptopts+=(--aptopt="$f"); done < <(apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|Retries) ' || true)
  btrfs_run subvolume create "$build"
  local IFS=,
  if ! out=$(mmdebstrap --quiet --mode=root --variant=apt --include="${RECIPE_PACKAGES[*]}" \
    "${aptopts[@]}" "$RECIPE_SUITE" "$build" "${sources[@]}" 2>&1); then
    die "mmdebstrap failed: $(printf '%s\n' "$out" | grep -E '^(E|W):|error' | tail -n 2 | tr '\n' ' ')"
  fi
  unset IFS
  customize_image "$build"
  btrfs_run property set "$build" ro true
  mv -T "$build" "$IMAGES/$IMAGE_ID"
}

# What makes a plain Debian root a dev container's: runs as host root on a tree this verb just
# made and nobody else has seen.
customize_image() {
  local r=$1
  rm -f "$r"/etc/ssh/ssh_host_* "$r/var/lib/dbus/machine-id"
  : >"$r/etc/machine-id"
  chroot "$r" sh -c 'getent group kvm >/dev/null || groupadd --system kvm'
  chroot "$r" useradd --uid "$DEV_UID" --user-group --groups kvm,sudo --shell /bin/bash --no-create-home "$DEV_USER"
  install -d -m 0755 "$r/home/$DEV_USER" "$r/etc/ssh/sparks_authorized_keys"
  printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$DEV_USER" >"$r/etc/sudoers.d/spark-dev"
  chmod 0440 "$r/etc/sudoers.d/spark-dev"
  cat >"$r/etc/ssh/sshd_config.d/spark-dev.conf" <<'CONF'
# spark-dev: keys only; the owner's keys come from the host (read-only).
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/sparks_authorized_keys/%u
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
CONF
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
  # The skills sync: ~/skills kept a clone of the repo /etc/sparks/skills.conf names (the host's
  # settings, bound read-only), every 20 s as dev.
  install -D -m 0755 "$IMAGE_FILES/sparks-skills-sync" "$r/usr/local/lib/sparks/skills-sync"
  install -m 0644 "$IMAGE_FILES/sparks-skills-sync.service" "$IMAGE_FILES/sparks-skills-sync.timer" "$r/etc/systemd/system/"
  chroot "$r" systemctl enable --quiet sparks-skills-sync.timer
  # Timers that wake a fleet of idle containers at once, and units a container has no use for.
  chroot "$r" systemctl mask --quiet apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer man-db.timer dpkg-db-backup.timer systemd-timesyncd.service 2>/dev/null || true
  rm -rf "$r"/var/cache/apt/archives/*.deb
}

# --- create's parts ---------------------------------------------------------------------------

# True if ADDRESS is another container's, or one of this host's own. A subshell: reading every
# record must leave the caller's META_ values (the container being created) as they were.
address_in_use() (
  local other
  for other in $(container_names); do
    read_meta "$other"
    [ "$META_ADDRESS" != "$1" ] || return 0
  done
  ip -o -4 addr show | grep -qF " $1/"
)

# A create that made the container undoes it all if it fails before the end, so a failed first
# create leaves nothing, but a home it found (kept from before) stays. One that found the
# container there undoes nothing.
FRESH=false
guard_fresh() {
  FRESH_NAME=$1 FRESH=$2 FRESH_KEEP_HOME=false
  ! is_subvolume "$(ct_dir "$1")/home" || FRESH_KEEP_HOME=true
  trap undo_fresh EXIT
  trap 'exit 130' INT TERM HUP
}
undo_fresh() {
  [ "$FRESH" = true ] || return 0
  remove_container "$FRESH_NAME" "$FRESH_KEEP_HOME" >/dev/null 2>&1 || true
}

# The dev user's home: a subvolume of its own, owned by uid 1000 as the container sees it (the
# unit maps it with idmap), seeded from the image's /etc/skel once. Its ID, written into it as
# .spark-dev-home-id when it is made, is what verify expects to find there. A kept home (from a
# destroy --keep-home) is taken up with the ID it holds: no container runs on it then, so
# nothing inside can change under root's feet; a symlink there is not followed.
ensure_home() {
  local home id='' idfile
  home=$(ct_dir "$1")/home
  idfile=$home/.spark-dev-home-id
  if is_subvolume "$home"; then
    [ -z "$META_HOME_ID" ] || return 0
    if [ -f "$idfile" ] && [ ! -L "$idfile" ]; then id=$(head -c 64 -- "$idfile"); fi
    [[ $id =~ ^[0-9a-f-]{36}$ ]] || id=$(new_id)
    META_HOME_ID=$id
    rm -f -- "$idfile"
    (set -C && printf '%s\n' "$id" >"$idfile") || die "cannot write the home ID into $home"
    chown "$DEV_UID:$DEV_UID" "$idfile"
    return 0
  fi
  if [ -e "$home" ] || [ -L "$home" ]; then die "$home is not a subvolume; refusing to use it"; fi
  btrfs_run subvolume create "$home"
  cp -a "$IMAGES/$META_IMAGE/etc/skel/." "$home/"
  META_HOME_ID=$(new_id)
  printf '%s\n' "$META_HOME_ID" >"$home/.spark-dev-home-id"
  chown -R "$DEV_UID:$DEV_UID" "$home"
  chmod 0750 "$home"
}

# The host's key for `spark-dev verify` (root-only), which every container admits (restricted).
VERIFY_KEY_NAME=verify_key
ensure_verify_key() {
  VERIFY_KEY=$ROOT/$VERIFY_KEY_NAME
  ensure_ssh_key "$VERIFY_KEY" "spark-dev-verify@$(hostname)"
}

# The container's SSH host keys, made once and kept across re-creations (its users' known_hosts
# stay right), owned by the container's root.
ensure_host_keys() {
  local keys t
  keys=$(ct_dir "$1")/hostkeys
  install -d -m 0700 "$keys"
  for t in ed25519 ecdsa; do
    [ -s "$keys/ssh_host_${t}_key" ] || ssh-keygen -q -t "$t" -N '' -C "$1" -f "$keys/ssh_host_${t}_key" <<<y >/dev/null
    chown "$META_UID_BASE:$META_UID_BASE" "$keys/ssh_host_${t}_key"
    chmod 0600 "$keys/ssh_host_${t}_key"
  done
}

# The container's own /dev/kvm: a node for the host's device, owned by root:kvm as the container
# sees them, 0660, so only its kvm group (the dev user) may open it. No node if the host has no KVM.
ensure_kvm_node() {
  local node gid major minor
  node=$(ct_dir "$1")/kvm
  rm -f "$node"
  [ -c /dev/kvm ] || return 0
  gid=$(awk -F: '$1 == "kvm" {print $3}' "$IMAGES/$META_IMAGE/etc/group")
  [[ $gid =~ ^[0-9]+$ ]] || die "image $META_IMAGE has no kvm group"
  major=$((0x$(stat -c %t /dev/kvm))) minor=$((0x$(stat -c %T /dev/kvm)))
  mknod -m 0660 "$node" c "$major" "$minor"
  chown "$META_UID_BASE:$((META_UID_BASE + gid))" "$node"
}

# The owner's keys for user dev, in a directory the unit binds read-only; replaced atomically,
# so a running container sees the new file at once.
write_keys() {
  local keys
  keys=$(ct_dir "$1")/sshkeys
  install -d -m 0755 "$keys"
  chown "$META_UID_BASE:$META_UID_BASE" "$keys"
  ensure_verify_key
  { [ -z "$2" ] || printf '%s\n' "$2"; printf 'restrict %s\n' "$(cut -d' ' -f1,2 "$VERIFY_KEY.pub")"; } | write_file "$keys/$DEV_USER" 0644
  chown "$META_UID_BASE:$META_UID_BASE" "$keys/$DEV_USER"
}

# What the host tells the container, in a directory the unit binds read-only at /etc/sparks:
# skills.conf when it has a skills repo (META_SKILLS_URL). Replaced atomically, so a running
# container sees the change at once.
write_settings() {
  local settings
  settings=$(ct_dir "$1")/settings
  install -d -m 0755 "$settings"
  if [ -n "$META_SKILLS_URL" ]; then
    printf '# Written by spark-dev on the host: the skills repo ~/skills is kept a clone of.\nSKILLS_URL=%s\n' "$META_SKILLS_URL" | write_file "$settings/skills.conf" 0644
  else
    rm -f "$settings/skills.conf"
  fi
}

# Runs the skills sync in NAME now (what its timer does every 20 s) and prints, as dev sees them
# in ~/skills: "HEAD" then "BRANCH COMMIT" per remote branch (nothing while there is no clone).
sync_skills() {
  in_container "$1" systemctl start sparks-skills-sync.service ||
    die "the skills sync in '$1' failed: $(in_container "$1" journalctl -u sparks-skills-sync.service -n 2 --no-pager -o cat 2>/dev/null | tr '\n' ' ')"
  in_container "$1" runuser -u "$DEV_USER" -- sh -c 'cd && [ -d skills/.git ] || exit 0
    git -C skills rev-parse -q --verify HEAD || echo none
    git -C skills for-each-ref --format="%(refname:lstrip=3) %(objectname)" refs/remotes/origin | { grep -v "^HEAD " || true; }'
}

# sync_packages NAME OLD NEW: installs what NEW adds, purges what it drops, inside the container.
sync_packages() {
  local name=$1 old=" $2 " new=" $3 " add=() drop=() p out
  for p in $3; do [[ $old == *" $p "* ]] || add+=("$p"); done
  for p in $2; do [[ $new == *" $p "* ]] || drop+=("$p"); done
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=120)
  if ((${#add[@]})); then
    if ! out=$(in_container "$name" "${apt[@]}" install --no-install-recommends "${add[@]}" 2>&1); then
      in_container "$name" "${apt[@]}" update >/dev/null 2>&1 || true
      out=$(in_container "$name" "${apt[@]}" install --no-install-recommends "${add[@]}" 2>&1) ||
        die "could not install ${add[*]} in '$name': $(printf '%s\n' "$out" | grep -E '^E:' | head -n 2 | tr '\n' ' ')"
    fi
  fi
  if ((${#drop[@]})); then
    out=$(in_container "$name" "${apt[@]}" purge --auto-remove "${drop[@]}" 2>&1) ||
      die "could not remove ${drop[*]} from '$name': $(printf '%s\n' "$out" | grep -E '^E:' | head -n 2 | tr '\n' ' ')"
  fi
}

# Stops NAME and removes all of it but, if KEEP_HOME is true, its home.
remove_container() {
  local name=$1 keep_home=$2 dir dropin
  dir=$(ct_dir "$name")
  systemctl disable --now "$(unit_name "$name")" >/dev/null 2>&1 || true
  systemctl reset-failed "$(unit_name "$name")" >/dev/null 2>&1 || true
  dropin=$(limits_dropin "$name")
  if [ -e "$dropin" ]; then rm -f "$dropin"; rmdir "${dropin%/*}" 2>/dev/null || true; systemctl daemon-reload; fi
  [ ! -e "$dir/root" ] || delete_subvolume_tree "$dir/root"
  [ "$keep_home" = true ] || [ ! -e "$dir/home" ] || delete_subvolume_tree "$dir/home"
  rm -rf "$dir/hostkeys" "$dir/sshkeys" "$dir/settings" "$dir/kvm" "$dir/spark-dev.meta"
  rmdir "$dir" 2>/dev/null || true
}
