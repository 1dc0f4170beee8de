# shellcheck shell=bash
# The front of every Sparks host tool: `TOOL VERB ARGS...` runs libexec/TOOL-VERB. Sourced by
# bin/TOOL, which then calls `dispatch TOOL "$@"`.

dispatch() {
  local tool=$1 home verb shown
  shift
  home=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
  verb=${1:-help}
  case $verb in
    -h | --help) verb=help ;;
    --version) verb=version ;;
  esac
  if [[ ! $verb =~ ^[a-z][a-z-]{0,19}$ ]] || [ ! -x "$home/libexec/$tool-$verb" ]; then
    shown=${verb:0:40}
    printf "%s: no such verb '%s' (see '%s help')\n" "$tool" "${shown//[^[:alnum:][:punct:]]/?}" "$tool" >&2
    exit 1
  fi
  (($# > 0)) && shift
  exec "$home/libexec/$tool-$verb" "$@"
}
