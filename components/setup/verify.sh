#!/usr/bin/env bash
# Checks that the host really works: pool mounted and writable, tools at the expected version,
# KVM answering. Prints one JSON object; a failed check names the host, the check and what to do.
# Vars: HOST, MOUNT_POINT, TOOLS_HASH. The host's Postgres TLS certificate (spark-pg cert) goes
# into the findings: clients verify every instance against it (sslmode=verify-full).
set -euo pipefail
fail() { echo "sparks verify: host $HOST: check $1 failed: $2" >&2; exit 1; }

fstype=$(findmnt --noheadings --output FSTYPE --mountpoint "$MOUNT_POINT" || true)
[ "$fstype" = btrfs ] || fail pool "$MOUNT_POINT is not a mounted btrfs filesystem (found: ${fstype:-nothing}); check the pool's mount unit with systemctl status"
probe=$(mktemp -p "$MOUNT_POINT" .sparks-verify.XXXXXX 2>/dev/null) || fail pool "$MOUNT_POINT is not writable; check the disk and \`dmesg\`"
rm -f "$probe"

installed=$(cat /opt/sparks/.content-hash 2>/dev/null || echo none)
[ "$installed" = "$TOOLS_HASH" ] || fail tools "/opt/sparks is at $installed, expected $TOOLS_HASH; run pulumi up again"
version=$(spark-pg version 2>&1) || fail tools "spark-pg does not run: $version"

kvm=$(python3 -c 'import fcntl; print(fcntl.ioctl(open("/dev/kvm", "rb"), 0xAE00))' 2>&1) || fail kvm "the KVM_GET_API_VERSION ioctl failed: $kvm; check that /dev/kvm exists and virtualization is enabled"
[ "$kvm" = 12 ] || fail kvm "KVM API version is $kvm, expected 12"
kvm_access=$(stat -c '%a %G' /dev/kvm)
[ "$kvm_access" = "660 kvm" ] || fail kvm "/dev/kvm is $kvm_access, expected \"660 kvm\"; run systemd-tmpfiles --create /etc/tmpfiles.d/sparks-kvm.conf"

cert=$(spark-pg cert --json 2>&1) || fail tls "spark-pg cert failed: $cert"

printf '{"pool":"%s","tools":"%s","sparkPg":"%s","kvmApiVersion":%s,"pgCertificate":%s}\n' "$MOUNT_POINT" "$TOOLS_HASH" "$version" "$kvm" "$cert"
