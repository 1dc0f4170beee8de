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
    # Never mount over something: a symlink, a file, or a directory that holds anything (config
    # refuses system paths; this is the host's own word). Our own pool mounted there is fine.
    if [ -z "$mounted" ]; then
        if [ -L "$MOUNT_POINT" ] || { [ -e "$MOUNT_POINT" ] && [ ! -d "$MOUNT_POINT" ]; }; then
            fail "$MOUNT_POINT is a symlink or a file; refusing to mount the pool there"
        fi
        if [ -d "$MOUNT_POINT" ]; then
            held=$(find "$MOUNT_POINT" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 3 | paste -sd' ')
            [ -z "$held" ] ||
                fail "$MOUNT_POINT is not empty (it holds $held); refusing to mount the pool over it. Set sparks:pool.mountPoint to an empty or new directory"
        fi
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
        systemctl reset-failed "$unit" 2>/dev/null || true
    fi
    # systemd can fail to spawn its umount (seen in containers on cgroup v1: "Failed to attach to
    # cgroup ... 219/CGROUP"), leaving the pool mounted: unmount it directly then.
    if mountpoint -q "$MOUNT_POINT"; then
        umount "$MOUNT_POINT" 2>/dev/null ||
            fail "could not unmount $MOUNT_POINT: something still uses it (see: fuser -vm $MOUNT_POINT, or lsof +f -- $MOUNT_POINT)"
    fi
    if [ "$WIPE_ON_DELETE" = true ] && [ -b "$DEVICE" ] && [ "$(blkid -o value -s LABEL "$DEVICE" 2>/dev/null)" = "$LABEL" ]; then
        wipefs --all "$DEVICE" >/dev/null
        echo "pool: wiped $DEVICE (sparks:pool.wipeOnDelete was true)"
    else
        echo "pool: unmounted; the data on $DEVICE is kept"
    fi
    ;;
esac
