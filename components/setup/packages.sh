#!/usr/bin/env bash
# Installs what a Sparks host needs. Packages are left in place on delete: other software may use them.
# Vars: PACKAGES (space-separated Debian package names, vetted by the component).
set -euo pipefail
case "$1" in
create)
    export DEBIAN_FRONTEND=noninteractive
    # spark-pg makes its own clusters; Debian's default one would squat on port 5432.
    install -d /etc/postgresql-common
    if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
        echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
    fi
    # Sparks runs lighttpd and Redis under units of its own (spark-skills-http, spark-redis@):
    # Debian's would take ports 80 and 6379. Masked before the install, so they never start.
    for unit in lighttpd.service redis-server.service; do
        if [ "$(systemctl is-enabled "$unit" 2>/dev/null || true)" != masked ]; then
            systemctl mask --quiet "$unit"
            systemctl stop "$unit" 2>/dev/null || true
        fi
    done
    missing=()
    for package in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "packages: all present"
        exit 0
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    ;;
delete) ;;
esac
