#!/usr/bin/env bash
# The directory the host tools are copied into before tools.sh installs them: root-owned, 0700, in
# a root-only parent, so no local user can create, read or plant anything in a staged copy (a
# world-writable /var/tmp path anyone can compute was a local root hole). Delete removes it.
# Vars: HOST (for messages), STAGING_ROOT.
set -euo pipefail
fail() { echo "sparks setup: host $HOST: staging: $*" >&2; exit 1; }

case "$1" in
create)
    parent=$(dirname "$STAGING_ROOT")
    for dir in "$parent" "$STAGING_ROOT"; do
        if [ -L "$dir" ] || { [ -e "$dir" ] && [ ! -d "$dir" ]; }; then
            fail "$dir is not a directory (a symlink or a file); refusing to stage tools there"
        fi
        if [ -d "$dir" ] && [ "$(stat -c %u "$dir")" != 0 ]; then
            fail "$dir is owned by $(stat -c %U "$dir"), not root; refusing to stage tools there"
        fi
    done
    install -d -m 0755 -o root -g root "$parent"
    install -d -m 0700 -o root -g root "$STAGING_ROOT"
    echo "staging: $STAGING_ROOT ready"
    ;;
delete)
    rm -rf "$STAGING_ROOT"
    rmdir "$(dirname "$STAGING_ROOT")" 2>/dev/null || true
    ;;
esac
