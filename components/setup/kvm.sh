#!/usr/bin/env bash
# Makes /dev/kvm usable by group kvm (0660), now and at every boot.
# A tmpfiles.d line works on real hosts and in containers alike, where there is no udev.
# Vars: HOST (for messages).
set -euo pipefail
rule=/etc/tmpfiles.d/sparks-kvm.conf
case "$1" in
create)
    [ -c /dev/kvm ] || { echo "sparks setup: host $HOST: kvm: /dev/kvm is missing; enable virtualization (VT-x/AMD-V) and load the kvm module" >&2; exit 1; }
    getent group kvm >/dev/null || groupadd --system kvm
    echo 'z /dev/kvm 0660 root kvm -' >"$rule"
    systemd-tmpfiles --create "$rule"
    echo "kvm: $(stat -c '%A %G' /dev/kvm)"
    ;;
delete)
    rm -f "$rule"
    ;;
esac
