#!/usr/bin/env bash
# The btrfs pool: format a blank disk (never anything else), mount it with a systemd mount unit.
# Vars: DEVICE, MOUNT_POINT, WIPE_ON_DELETE (true|false), HOST (for messages).
set -euo pipefail
LABEL=sparks-pool
unit=$(systemd-escape --path --suffix=mount "$MOUNT_POINT")
fail() { echo "sparks setup: host $HOST: pool: $*" >&2; exit 1; }

case "$1" in
create)
    [ -b "$DEVICE" ] || fail "$DEVICE is not a block device; set sparks:pool.device to the blank disk meant for the pool"
    fstype=$(blkid -o value -s TYPE "$DEVICE" 2>/dev/null || true)
    label=$(blkid -o value -s LABEL "$DEVICE" 2>/dev/null || true)
    if [ -z "$fstype" ]; then
        # blkid sees no filesystem; wipefs also catches partition tables and other signatures.
        [ -z "$(wipefs --noheadings "$DEVICE")" ] ||
            fail "$DEVICE holds signatures ($(wipefs --noheadings --output TYPE "$DEVICE" | tr '\n' ' ')); refusing to format it. Use a blank disk, or wipe it yourself if its data is not needed"
        mkfs.btrfs --label "$LABEL" "$DEVICE" >/dev/null
        echo "pool: formatted $DEVICE"
    elif [ "$fstype" != btrfs ] || [ "$label" != "$LABEL" ]; then
        fail "$DEVICE already holds a $fstype filesystem${label:+ labelled $label}; refusing to format it. Use a blank disk, or wipe it yourself if its data is not needed"
    fi
    mounted=$(findmnt --noheadings --output SOURCE --mountpoint "$MOUNT_POINT" || true)
    if [ -n "$mounted" ] && [ "$(realpath "$mounted")" != "$(realpath "$DEVICE")" ]; then
        fail "$MOUNT_POINT already has $mounted mounted on it, not $DEVICE"
    fi
    install -d "$MOUNT_POINT"
    # An explicit mount unit: systemd skips fstab lines for block devices inside containers.
    cat >"/etc/systemd/system/$unit" <<UNIT
# Written by Sparks (pulumi): the btrfs pool.
[Unit]
Description=Sparks btrfs pool on $DEVICE
Before=local-fs.target

[Mount]
What=$DEVICE
Where=$MOUNT_POINT
Type=btrfs
Options=noatime

[Install]
WantedBy=local-fs.target
UNIT
    systemctl daemon-reload
    systemctl enable --now "$unit" >/dev/null 2>&1 || fail "could not mount $DEVICE at $MOUNT_POINT: $(systemctl status "$unit" --no-pager 2>&1 | tail -n 3)"
    echo "pool: $DEVICE mounted at $MOUNT_POINT"
    ;;
delete)
    if [ -e "/etc/systemd/system/$unit" ]; then
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
        rm -f "/etc/systemd/system/$unit"
        systemctl daemon-reload
    fi
    if [ "$WIPE_ON_DELETE" = true ] && [ -b "$DEVICE" ] && [ "$(blkid -o value -s LABEL "$DEVICE" 2>/dev/null)" = "$LABEL" ]; then
        wipefs --all "$DEVICE" >/dev/null
        echo "pool: wiped $DEVICE (sparks:pool.wipeOnDelete was true)"
    else
        echo "pool: unmounted; the data on $DEVICE is kept"
    fi
    ;;
esac
