#!/usr/bin/env bash
# Runs on a Sparks host as root (bench/skills/run.ts copies it there): serves the skills repo,
# makes one dev container that syncs it, then RUNS times pushes a new skill over SSH (the host's
# verify key, to the host's own address) and times push-to-synced: from the push's return to the
# container's ~/skills holding the pushed commit, by its 20 s timer alone; then RUNS times the
# on-demand sync (`spark-dev skills-sync`) after a push. Then it pushes a repo of 200 skills for
# run.ts to clone. Prints one JSON object.
# Usage: on-host.sh RUNS HOST_ADDRESS CONTAINER_ADDRESS
set -euo pipefail
runs=$1 address=$2 caddress=$3
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
spark-skills init --address "$address" --json >/dev/null
image=$(spark-dev image)
spark-dev create bench-sk --address "$caddress" --image "$image" --skills-url "http://$address:8080/skills.git" >/dev/null
spark-dev skills-sync bench-sk >/dev/null
work=$(mktemp -d /root/bench-skills.XXXXXX)
trap 'rm -rf "$work"' EXIT
for key in /etc/ssh/ssh_host_*_key.pub; do printf '%s %s\n' "$address" "$(cut -d' ' -f1,2 "$key")"; done >"$work/known_hosts"
export GIT_SSH_COMMAND="ssh -i /etc/sparks/spark-skills/verify_key -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$work/known_hosts"
git clone -q "http://$address:8080/skills.git" "$work/clone"
cd "$work/clone"
git config user.name bench
git config user.email bench@localhost
synced_head() { cat /srv/sparks/dev/bench-sk/home/skills/.git/refs/heads/main 2>/dev/null || true; }
push_skill() {
  spark-skills new "$1" --dir . >/dev/null
  git add -A
  git commit -q -m "$1"
  git push -q "sparks-skills@$address:skills.git" HEAD:main
  git rev-parse HEAD
}
timer=() demand=()
for i in $(seq 1 "$runs"); do
  commit=$(push_skill "timer-$i")
  t0=$(ms)
  until [ "$(synced_head)" = "$commit" ]; do sleep 0.05; done
  timer+=($(($(ms) - t0)))
  commit=$(push_skill "demand-$i")
  t0=$(ms)
  spark-dev skills-sync bench-sk >/dev/null
  [ "$(synced_head)" = "$commit" ] || { echo "skills-sync did not bring $commit" >&2; exit 1; }
  demand+=($(($(ms) - t0)))
done
# 200 skills, each a SKILL.md with a paragraph, a script and a reference, as real ones have.
for i in $(seq -w 1 200); do
  mkdir -p "skill-$i/scripts" "skill-$i/references"
  printf -- '---\nname: skill-%s\ndescription: Benchmark skill %s. Formats release notes for one service; use when a release is cut.\nmetadata:\n  owner: bench\n---\n# skill-%s\n\n%s\n' \
    "$i" "$i" "$i" "$(head -c 1500 /dev/urandom | base64 -w 100)" >"skill-$i/SKILL.md"
  printf '#!/bin/sh\necho %s\n' "$i" >"skill-$i/scripts/run.sh"
  head -c 3000 /dev/urandom | base64 -w 100 >"skill-$i/references/guide.md"
done
git add -A
git commit -q -m "200 skills"
t0=$(ms)
git push -q "sparks-skills@$address:skills.git" HEAD:main
push_200_ms=$(($(ms) - t0))
skills=$(curl -sS "http://$address:8080/skills.json" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["skills"]))')
repo_kb=$(du -sk /srv/sparks/skills/skills.git | cut -f1)
join() { local IFS=,; echo "$*"; }
printf '{"push_to_sync_timer_ms":[%s],"push_to_sync_on_demand_ms":[%s],"push_200_ms":%s,"skills":%s,"repo_kb":%s}\n' \
  "$(join "${timer[@]}")" "$(join "${demand[@]}")" "$push_200_ms" "$skills" "$repo_kb"
