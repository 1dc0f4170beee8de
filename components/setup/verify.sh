#!/usr/bin/env bash
# Checks that the host really works: pool mounted and writable, tools at the expected version,
# KVM answering, the Postgres TLS certificate, no failed spark-pg or spark-redis units. Every
# check runs, also after one fails.
#   create (the verify step of `pulumi up`): prints the findings as one JSON object; a failed
#     check fails the step, one line each, naming the host, the check and what to do.
#   check (`sparks verify`): prints every check as a JSON line {"check","ok","detail"}.
# Vars: HOST, MOUNT_POINT, TOOLS_HASH, SETUP (no check reads it: a new one re-runs them all).
# The host's Postgres TLS certificate (spark-pg cert) goes into the findings: clients verify
# every instance against it (sslmode=verify-full).
set -euo pipefail
verb=${1:-create}

check_pool() {
  local fstype probe
  fstype=$(findmnt --noheadings --output FSTYPE --mountpoint "$MOUNT_POINT" || true)
  [ "$fstype" = btrfs ] || { echo "$MOUNT_POINT is not a mounted btrfs filesystem (found: ${fstype:-nothing}); check the pool's mount unit with systemctl status"; return 1; }
  probe=$(mktemp -p "$MOUNT_POINT" .sparks-verify.XXXXXX 2>/dev/null) || { echo "$MOUNT_POINT is not writable; check the disk and \`dmesg\`"; return 1; }
  rm -f "$probe"
  echo "$MOUNT_POINT is a mounted, writable btrfs filesystem"
}

check_tools() {
  local installed version
  installed=$(cat /opt/sparks/.content-hash 2>/dev/null || echo none)
  [ "$installed" = "$TOOLS_HASH" ] || { echo "/opt/sparks is at $installed, expected $TOOLS_HASH; run pulumi up again"; return 1; }
  version=$(spark-pg version 2>&1) || { echo "spark-pg does not run: $version"; return 1; }
  echo "/opt/sparks at $TOOLS_HASH; $version"
}

check_kvm() {
  local kvm access
  kvm=$(python3 -c 'import fcntl; print(fcntl.ioctl(open("/dev/kvm", "rb"), 0xAE00))' 2>&1) || { echo "the KVM_GET_API_VERSION ioctl failed: $kvm; check that /dev/kvm exists and virtualization is enabled"; return 1; }
  [ "$kvm" = 12 ] || { echo "KVM API version is $kvm, expected 12"; return 1; }
  access=$(stat -c '%a %G' /dev/kvm)
  [ "$access" = "660 kvm" ] || { echo "/dev/kvm is $access, expected \"660 kvm\"; run systemd-tmpfiles --create /etc/tmpfiles.d/sparks-kvm.conf"; return 1; }
  echo "KVM API version 12, /dev/kvm 660 kvm"
}

check_tls() {
  local cert
  cert=$(spark-pg cert --json 2>&1) || { echo "spark-pg cert failed: $cert"; return 1; }
  echo "the Postgres TLS certificate is in place"
}

check_units() {
  local failed active
  failed=$(systemctl list-units --failed --plain --no-legend 'spark-pg@*' 'spark-redis@*' | awk '{ print $1 }' | paste -sd' ')
  [ -z "$failed" ] || { echo "failed: $failed; see journalctl -u UNIT, then spark-pg (or spark-redis) start NAME"; return 1; }
  active=$(systemctl list-units --state=active --plain --no-legend 'spark-pg@*' 'spark-redis@*' | wc -l)
  echo "no failed spark-pg or spark-redis units; $active running"
}

# The dev containers, each as `spark-dev verify` proves it (SSH in as dev, a KVM guest, the same
# home). For `sparks verify` only: during an up, each container has its own verify step. A
# stopped container with an idle stop is in a state its config asks for: it is started to be
# verified (its idle stop stops it again); any other stopped container fails.
check_devcontainers() {
  local containers name state idle out failed=() passed=() woken=()
  containers=$(spark-dev list --json | python3 -c 'import json, sys
for c in json.load(sys.stdin)["containers"]: print(c["name"], c["state"], c["idle_minutes"] or 0)') ||
    { echo "spark-dev list failed"; return 1; }
  [ -n "$containers" ] || { echo "no dev containers"; return 0; }
  while read -r name state idle; do
    if [ "$state" = stopped ] && [ "$idle" != 0 ]; then
      if ! out=$(spark-dev start "$name" 2>&1); then failed+=("$out"); continue; fi
      woken+=("$name")
    fi
    if out=$(spark-dev verify "$name" 2>&1); then passed+=("$name"); else failed+=("$out"); fi
  done <<<"$containers"
  if ((${#failed[@]})); then
    printf '%s; ' "${failed[@]}"
    echo "see spark-dev status NAME and journalctl -u spark-dev@NAME"
    return 1
  fi
  printf 'dev containers %s: SSH as dev, a KVM guest booted, home in place, ~/skills in step with the skills repo where there is one' "${passed[*]}"
  ((${#woken[@]} == 0)) || printf '; %s started from idle stop to be verified' "${woken[*]}"
  echo
}

# The skills repo, if this host keeps it, as `spark-skills verify` proves it (healthz, a clone over
# HTTP, a push over SSH seen over HTTP, a broken push refused). For `sparks verify` only: during
# an up, the skills repo has its own verify step.
check_skills() {
  local out
  if [ ! -e /etc/sparks/spark-skills/lighttpd.conf ]; then
    echo "no skills repo on this host"
    return 0
  fi
  out=$(spark-skills verify 2>&1) || { echo "$out; see spark-skills status and journalctl -u spark-skills-http"; return 1; }
  echo "$out"
}

checks=(pool tools kvm tls units)
[ "$verb" != check ] || checks+=(skills devcontainers)
failures=0
for check in "${checks[@]}"; do
  if detail=$("check_$check" 2>&1); then ok=true; else ok=false failures=$((failures + 1)); fi
  if [ "$verb" = check ]; then
    python3 -c 'import json, sys; print(json.dumps({"check": sys.argv[1], "ok": sys.argv[2] == "true", "detail": sys.argv[3]}))' "$check" "$ok" "$detail"
  elif [ "$ok" = false ]; then
    echo "sparks verify: host $HOST: check $check failed: $detail" >&2
  fi
done
[ "$verb" = check ] && exit 0
[ "$failures" -eq 0 ] || exit 1

printf '{"pool":"%s","tools":"%s","sparkPg":"%s","kvmApiVersion":%s,"pgCertificate":%s}\n' "$MOUNT_POINT" "$TOOLS_HASH" \
  "$(spark-pg version)" "$(python3 -c 'import fcntl; print(fcntl.ioctl(open("/dev/kvm", "rb"), 0xAE00))')" "$(spark-pg cert --json)"
