#!/usr/bin/env bash
# Runs on a Sparks host as root (bench/devcontainer/run.ts copies it there): builds the base
# image if needed, then RUNS times creates a container and times create-to-SSH-ready (from the
# `spark-dev create` call to the first `ssh dev@ADDRESS true` that succeeds, with the host's
# verify key), a stop, and a start-to-SSH-ready; then the disk each container costs (exclusive
# bytes of its root and home) beside the base image's size. Prints one JSON object.
# Usage: on-host.sh RUNS ADDRESS_PREFIX (e.g. 10.89.42.2 makes 10.89.42.21x)
set -euo pipefail
runs=$1 prefix=$2
root=/srv/sparks/dev
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
image_start=$(ms)
image=$(spark-dev image)
image_ms=$(($(ms) - image_start))
key=$root/verify_key
ssh_ready() {
  local known=/root/bench-known-$1
  for k in "$root/$1"/hostkeys/*.pub; do printf '%s %s\n' "$2" "$(cut -d' ' -f1,2 "$k")"; done >"$known"
  until ssh -q -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known" \
    -o ConnectTimeout=2 "dev@$2" true 2>/dev/null; do sleep 0.02; done
}
creates=() starts=()
for i in $(seq 1 "$runs"); do
  name=bench-$i address=$prefix$i
  t0=$(ms)
  spark-dev create "$name" --address "$address" --image "$image" >/dev/null
  ssh_ready "$name" "$address"
  creates+=($(($(ms) - t0)))
  spark-dev stop "$name" >/dev/null
  t0=$(ms)
  spark-dev start "$name" >/dev/null
  ssh_ready "$name" "$address"
  starts+=($(($(ms) - t0)))
done
sync
btrfs filesystem sync /srv/sparks >/dev/null
# Exclusive bytes: what removing the subvolume would free (the rest is shared with the image).
exclusive() { btrfs filesystem du -s --raw "$1" | awk 'NR == 2 {print $2}'; }
image_bytes=$(btrfs filesystem du -s --raw "$root/images/$image" | awk 'NR == 2 {print $1}')
roots=() homes=()
for i in $(seq 1 "$runs"); do roots+=("$(exclusive "$root/bench-$i/root")"); homes+=("$(exclusive "$root/bench-$i/home")"); done
for i in $(seq 1 "$runs"); do spark-dev destroy "bench-$i" >/dev/null; done
join() { local IFS=,; echo "$*"; }
printf '{"image":"%s","image_build_ms":%s,"image_bytes":%s,"create_to_ssh_ms":[%s],"start_to_ssh_ms":[%s],"root_exclusive_bytes":[%s],"home_exclusive_bytes":[%s]}\n' \
  "$image" "$image_ms" "$image_bytes" "$(join "${creates[@]}")" "$(join "${starts[@]}")" "$(join "${roots[@]}")" "$(join "${homes[@]}")"
