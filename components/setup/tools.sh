#!/usr/bin/env bash
# Installs the host tools (this repo's host/ tree) from the staging copy, atomically, plus their
# systemd units and config. Delete stops the services and removes all of it; pool data stays.
# Vars: HOST, STAGING (where CopyToRemote put host/, inside the root-only directory staging.sh
# made), TOOLS_HASH, POOL_DIR and REDIS_DIR (spark-pg's and spark-redis's roots on the pool), PG_CONF
# and REDIS_CONF (file contents), DEV_DIR (spark-dev's root on the pool), SKILLS_DIR (spark-skills's
# subvolume on the pool).
set -euo pipefail
dest=/opt/sparks
fail() { echo "sparks setup: host $HOST: tools: $*" >&2; exit 1; }

# A staged copy is installed only if nobody but root can have touched it: a real directory owned
# by root inside the root-only 0700 staging directory, holding no symlinks and only root's files.
check_staged() {
    local root
    root=$(dirname "$STAGING")
    if [ -L "$root" ] || [ "$(stat -c '%u %a' "$root")" != "0 700" ]; then
        fail "$root is not a root-owned 0700 directory; refusing to install tools staged there"
    fi
    if [ -L "$STAGING" ] || [ "$(stat -c %u "$STAGING")" != 0 ]; then
        fail "$STAGING is a symlink or not owned by root; refusing to install it"
    fi
    local odd
    odd=$(find "$STAGING" \( -type l -o ! -user root \) -print -quit)
    [ -z "$odd" ] || fail "$odd in the staged copy is a symlink or not owned by root; refusing to install it"
}

case "$1" in
create)
    if [ -d "$STAGING" ]; then
        check_staged
        # sftp does not carry file modes over. No symlinks (checked above): nothing is followed.
        chmod -R u=rwX,go=rX "$STAGING"
        find "$STAGING/bin" "$STAGING/libexec" -maxdepth 1 -type f -exec chmod 0755 {} +
        echo "$TOOLS_HASH" >"$STAGING/.content-hash"
        rm -rf "$dest.old"
        if [ -d "$dest" ]; then mv "$dest" "$dest.old"; fi
        mv "$STAGING" "$dest"
        rm -rf "$dest.old"
    elif [ "$(cat "$dest/.content-hash" 2>/dev/null)" != "$TOOLS_HASH" ]; then
        fail "the staged copy $STAGING is gone and $dest is not at $TOOLS_HASH; run \`pulumi up --replace\` on this host's tools copy"
    fi
    for tool in "$dest"/bin/*; do ln -sfn "$tool" "/usr/local/bin/$(basename "$tool")"; done
    cp "$dest"/systemd/* /etc/systemd/system/
    install -d -m 0755 /etc/sparks "$POOL_DIR" "$REDIS_DIR"
    printf '%s\n' "$PG_CONF" >/etc/sparks/spark-pg.conf.new
    mv /etc/sparks/spark-pg.conf.new /etc/sparks/spark-pg.conf
    printf '%s\n' "$REDIS_CONF" >/etc/sparks/spark-redis.conf.new
    mv /etc/sparks/spark-redis.conf.new /etc/sparks/spark-redis.conf
    printf 'SPARK_DEV_ROOT=%s\n' "$DEV_DIR" >/etc/sparks/spark-dev.conf.new
    mv /etc/sparks/spark-dev.conf.new /etc/sparks/spark-dev.conf
    printf 'SPARK_SKILLS_ROOT=%s\n' "$SKILLS_DIR" >/etc/sparks/spark-skills.conf.new
    mv /etc/sparks/spark-skills.conf.new /etc/sparks/spark-skills.conf
    systemctl daemon-reload
    systemctl enable --now spark-dev-idle.timer spark-pg-expire.timer >/dev/null 2>&1
    echo "tools: $TOOLS_HASH installed in $dest"
    ;;
delete)
    units=$(systemctl list-units 'spark-pg@*' 'spark-redis@*' 'spark-dev@*' --all --plain --no-legend | awk '{print $1}')
    for unit in $units spark-dev-idle.timer spark-pg-expire.timer spark-skills-http.service; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
    if [ -d "$dest" ]; then
        for tool in "$dest"/bin/*; do rm -f "/usr/local/bin/$(basename "$tool")"; done
        for unit in "$dest"/systemd/*; do rm -f "/etc/systemd/system/$(basename "$unit")"; done
    fi
    rm -rf "$dest" "$dest.old" /etc/sparks /run/spark-pg /run/spark-redis /run/spark-dev /run/spark-skills
    systemctl daemon-reload
    echo "tools: removed; data under $POOL_DIR, $REDIS_DIR, $DEV_DIR and $SKILLS_DIR is kept"
    ;;
esac
