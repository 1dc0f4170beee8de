#!/usr/bin/env bash
# Makes /dev/kvm usable by group kvm (0660), now and at every boot; delete puts back what was there.
# A tmpfiles.d line works on real hosts and in containers alike, where there is no udev.
# Vars: HOST (for messages).
set -euo pipefail
rule=/etc/tmpfiles.d/sparks-kvm.conf
before=/var/lib/sparks/kvm-before
case "$1" in
create)
    [ -c /dev/kvm ] || { echo "sparks setup: host $HOST: kvm: /dev/kvm is missing; enable virtualization (VT-x/AMD-V) and load the kvm module" >&2; exit 1; }
    getent group kvm >/dev/null || groupadd --system kvm
    install -d /var/lib/sparks
    [ -e "$before" ] || stat -c '%a %U %G' /dev/kvm >"$before"
    echo 'z /dev/kvm 0660 root kvm -' >"$rule"
    systemd-tmpfiles --create "$rule"
    echo "kvm: $(stat -c '%A %G' /dev/kvm)"
    ;;
delete)
    rm -f "$rule"
    if [ -e "$before" ] && [ -c /dev/kvm ]; then
        read -r mode owner group <"$before"
        chown "$owner:$group" /dev/kvm
        chmod "$mode" /dev/kvm
    fi
    rm -f "$before"
    rmdir --ignore-fail-on-non-empty /var/lib/sparks 2>/dev/null || true
    ;;
esac
