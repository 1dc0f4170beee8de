# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the verbs that source this file
# Helpers shared by the spark-skills verbs. Sourced, never run.
#
# The skills repo of a host, on its btrfs pool:
#   $SPARK_SKILLS_ROOT/           a subvolume, root's, 0755 (the repo is public: anyone may clone)
#     skills.git                  the bare repo, SKILLS_USER's: only pushes over SSH write to it
#     spark-skills.meta           KEY=value lines: PORT ADDRESS SSH_PORT CREATED (root's)
#   /etc/sparks/spark-skills/     root's: the web server's config, its git config, the hooks
#                                 directory the repo runs (pre-receive: spark-skills hook), and
#                                 the host's verify key
#   /var/lib/sparks-skills/.ssh/authorized_keys   root's: who may push (forced to serve-ssh)
# Two system users: SKILLS_USER owns the repo and runs pushes (its hook too); WEB_USER runs the
# web server (spark-skills-http.service), which reads the repo and writes nothing.

SPARK_TOOL=spark-skills
SYSTEM_CONF=/etc/sparks/spark-skills.conf
RUN_DIR=/run/spark-skills
ETC_DIR=/etc/sparks/spark-skills
UNIT=spark-skills-http.service
SKILLS_USER=sparks-skills
WEB_USER=sparks-skills-web
SKILLS_HOME=/var/lib/sparks-skills
DEFAULT_BRANCH=main
# The branch verify pushes (main plus one verify skill); each verify replaces it.
VERIFY_BRANCH=sparks-verify
# shellcheck source=sparks.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/sparks.sh"

# --- configuration ----------------------------------------------------------------------------
# /etc/sparks/spark-skills.conf (or $SPARK_SKILLS_CONF): KEY=value lines, read as data.
#   SPARK_SKILLS_ROOT  the repo's subvolume on the btrfs pool

load_config() {
  local conf=${SPARK_SKILLS_CONF:-$SYSTEM_CONF}
  ROOT=''
  read_conf "$conf" skills_conf_key
  [ -n "$ROOT" ] || die "$conf: SPARK_SKILLS_ROOT is not set"
  REPO=$ROOT/skills.git
  META=$ROOT/spark-skills.meta
}

skills_conf_key() {
  case $1 in
    SPARK_SKILLS_ROOT)
      plain_path "$2" "$1" "$3"
      ROOT=$2 ;;
    *) die "$3: unknown key $1" ;;
  esac
}

# META_PORT, META_ADDRESS, META_CREATED from the record; META_FOUND=yes if there is one.
read_meta() {
  META_FOUND=no META_PORT='' META_ADDRESS='' META_SSH_PORT=22 META_CREATED=''
  [ -f "$META" ] && [ ! -L "$META" ] || return 0
  META_FOUND=yes
  read_conf "$META" meta_key
}

meta_key() {
  case $1 in
    PORT) META_PORT=$2 ;;
    ADDRESS) META_ADDRESS=$2 ;;
    SSH_PORT) META_SSH_PORT=$2 ;;
    CREATED) META_CREATED=$2 ;;
    *) ;;
  esac
}

write_meta() {
  printf 'PORT=%s\nADDRESS=%s\nSSH_PORT=%s\nCREATED=%s\n' "$META_PORT" "$META_ADDRESS" "$META_SSH_PORT" "$META_CREATED" | write_file "$META" 0644
}

http_url() { printf 'http://%s:%s/skills.git' "$(url_host "$META_ADDRESS")" "$META_PORT"; }
# scp-like on port 22 (what people type), a URL on any other.
push_url() {
  if [ "$META_SSH_PORT" = 22 ] && [[ $META_ADDRESS != *:* ]]; then
    printf '%s@%s:skills.git' "$SKILLS_USER" "$META_ADDRESS"
  else
    printf 'ssh://%s@%s:%s/skills.git' "$SKILLS_USER" "$(url_host "$META_ADDRESS")" "$META_SSH_PORT"
  fi
}

# Runs git on the repo as its owner (root never works inside a directory another user owns).
repo_git() {
  runuser -u "$SKILLS_USER" -- git --git-dir="$REPO" "$@"
}

# The default branch's commit, or nothing when the repo has none yet.
repo_head() {
  repo_git rev-parse -q --verify "refs/heads/$DEFAULT_BRANCH^{commit}" 2>/dev/null || true
}

# The web server's answer to GET PATH on this host's own address: "CODE BODY".
http_get() {
  local out code
  out=$(curl -sS --max-time 10 -w '\n%{http_code}' "http://$(url_host "$META_ADDRESS"):$META_PORT$1" 2>&1) || {
    printf '000 %s' "$(printf '%s' "$out" | tail -n 1)"
    return 0
  }
  code=${out##*$'\n'}
  printf '%s %s' "$code" "${out%$'\n'*}"
}

# The pool must be mounted and btrfs; ROOT, a subvolume (root's, 0755: the repo is public), is
# made on first use, and refused if it is a symlink or anyone else's.
require_root() {
  local parent=${ROOT%/*}
  if [ ! -e "$ROOT" ] && [ ! -L "$ROOT" ]; then
    [ "$(stat -f -c %T "${parent:-/}" 2>/dev/null)" = btrfs ] || die "$ROOT does not exist and ${parent:-/} is not on btrfs"
    btrfs_run subvolume create "$ROOT"
    chmod 0755 "$ROOT"
  fi
  if [ -L "$ROOT" ] || ! is_subvolume "$ROOT" || [ "$(stat -c '%u %a' "$ROOT")" != "0 755" ]; then
    die "$ROOT is not a subvolume of root's (0755, not a symlink); refusing to use it"
  fi
}

# The two system users, made once. SKILLS_USER logs in over SSH only with a push key, whose
# forced command is serve-ssh: '*' (no password, not locked) lets sshd take its keys.
ensure_users() {
  if ! getent passwd "$SKILLS_USER" >/dev/null; then
    useradd --system --user-group --home-dir "$SKILLS_HOME" --no-create-home --shell /bin/sh "$SKILLS_USER"
    usermod -p '*' "$SKILLS_USER"
  fi
  getent passwd "$WEB_USER" >/dev/null ||
    useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$WEB_USER"
  install -d -o root -g root -m 0755 "$SKILLS_HOME" "$SKILLS_HOME/.ssh"
  install -d -o root -g root -m 0755 "$ETC_DIR" "$ETC_DIR/hooks"
}

# The bare repo, made in a temp directory beside it and renamed into place, so a killed init
# leaves no half-made repo (the next init removes the temp); SEED example gives it a first commit
# from share/spark-skills/seed, empty none.
make_repo() {
  local seed=$1 tmp tree commit stale
  for stale in "$ROOT"/.skills.git.*; do
    [ ! -e "$stale" ] || rm -rf -- "$stale"
  done
  tmp=$(mktemp -d "$ROOT/.skills.git.XXXXXX")
  chown "$SKILLS_USER:$SKILLS_USER" "$tmp"
  chmod 0755 "$tmp"
  runuser -u "$SKILLS_USER" -- git init -q --bare --initial-branch="$DEFAULT_BRANCH" "$tmp"
  if [ "$seed" = example ]; then
    # The seed, read from the installed tools (root's, world-readable), through an index of its own.
    tree=$(cd "$SPARK_TOOL_HOME/share/spark-skills/seed" && runuser -u "$SKILLS_USER" -- env GIT_DIR="$tmp" \
      GIT_INDEX_FILE="$tmp/seed-index" GIT_WORK_TREE=. sh -c 'git add -A . && git write-tree')
    rm -f "$tmp/seed-index"
    commit=$(printf 'The skills repo, with an example skill\n' | runuser -u "$SKILLS_USER" -- env GIT_DIR="$tmp" \
      GIT_AUTHOR_NAME=Sparks GIT_AUTHOR_EMAIL="sparks@$(hostname)" GIT_COMMITTER_NAME=Sparks \
      GIT_COMMITTER_EMAIL="sparks@$(hostname)" git commit-tree "$tree")
    runuser -u "$SKILLS_USER" -- git --git-dir="$tmp" update-ref "refs/heads/$DEFAULT_BRANCH" "$commit"
  fi
  fault_point seeded
  mv -T "$tmp" "$REPO"
}

# The repo's settings, set again on every init: nothing a push can change.
configure_repo() {
  { [ -d "$REPO" ] && [ ! -L "$REPO" ] && [ "$(stat -c %U "$REPO")" = "$SKILLS_USER" ]; } ||
    die "$REPO is not a repo of $SKILLS_USER's; refusing to use it"
  # The hook runs from a root-owned directory: the repo's owner cannot change what it runs.
  ln -sfn "$SPARK_TOOL_HOME/libexec/spark-skills-hook" "$ETC_DIR/hooks/pre-receive"
  local key value
  while read -r key value; do
    repo_git config "$key" "$value"
  done <<CONF
core.hooksPath $ETC_DIR/hooks
receive.denyNonFastForwards true
receive.fsckObjects true
http.receivepack false
CONF
}

# authorized_keys for SKILLS_USER (root's): each push key, and the host's verify key, forced to
# serve-ssh with no terminal, forwarding or agent.
write_push_keys() {
  local keys=$1 line
  ensure_run_dir
  VERIFY_KEY=$ETC_DIR/verify_key
  ensure_ssh_key "$VERIFY_KEY" "spark-skills-verify@$(hostname)"
  {
    while IFS= read -r line; do
      [ -z "$line" ] || printf 'command="%s/bin/spark-skills serve-ssh",restrict %s\n' "$SPARK_TOOL_HOME" "$line"
    done <<<"$keys"
    printf 'command="%s/bin/spark-skills serve-ssh",restrict %s\n' "$SPARK_TOOL_HOME" "$(cut -d' ' -f1,2 "$VERIFY_KEY.pub")"
  } | write_file "$SKILLS_HOME/.ssh/authorized_keys" 0644
}

# The web server's config and unit, then the service (re)started when they changed; returns once
# /healthz answers, or dies with what the journal says.
serve() {
  local conf=$ETC_DIR/lighttpd.conf gitconfig=$ETC_DIR/web.gitconfig before after bind
  bind=0.0.0.0
  [[ $META_ADDRESS != *:* ]] || bind='[::]'
  before=$({ cat "$conf" "$gitconfig" 2>/dev/null || true; } | sha256sum)
  # The repo is another user's: the web server's git is told it is safe to read. git-http-backend
  # enters it as "." (its path cannot be named), so any directory: this config is read only by the
  # web server's git, which serves only GIT_PROJECT_ROOT, a repo of SKILLS_USER's whose config only
  # root writes.
  printf '[safe]\n\tdirectory = *\n' | write_file "$gitconfig" 0644
  sed -e "s|@PORT@|$META_PORT|g" -e "s|@BIND@|$bind|g" -e "s|@REPO@|$REPO|g" -e "s|@ETC@|$ETC_DIR|g" \
    -e "s|@HOME@|$SPARK_TOOL_HOME|g" "$SPARK_TOOL_HOME/share/spark-skills/lighttpd.conf" | write_file "$conf" 0644
  after=$(cat "$conf" "$gitconfig" | sha256sum)
  install_unit "$UNIT"
  systemctl enable --quiet "$UNIT"
  if [ "$before" != "$after" ]; then systemctl restart "$UNIT"; else systemctl start "$UNIT"; fi
  wait_healthy
}

wait_healthy() {
  local deadline=$((SECONDS + 15)) answer
  while :; do
    answer=$(http_get /healthz)
    [ "${answer%% *}" != 200 ] || return 0
    if ((SECONDS >= deadline)) || ! systemctl is-active --quiet "$UNIT"; then
      die "the web server does not answer on port $META_PORT (/healthz: ${answer:0:200}); journal: $(journalctl -u "$UNIT" -n 3 --no-pager -o cat 2>/dev/null | tr '\n' ' ')"
    fi
    sleep 0.2
  done
}
