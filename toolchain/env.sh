# shellcheck shell=bash
# Source this file (bash): `. toolchain/env.sh`. It sets up the environment for running the
# project's Pulumi toolchain (built by toolchain/bootstrap) offline. It does not change the
# caller's shell options, works under `set -u`, and may be sourced more than once.
#
# Sets and exports:
#   PATH          $ROOT/.tools/bin, then $ROOT/node_modules/.bin (Node 22 from the npm package
#                 `node`; the language host runs the `node` it finds on PATH), then the old PATH
#   PULUMI_HOME   $ROOT/.tools/pulumi-home (plugin cache with the providers; git-ignored)
#   PULUMI_SKIP_UPDATE_CHECK=true, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
#   PULUMI_BACKEND_URL         file://$ROOT/.state, unless already set (non-empty)
#   PULUMI_CONFIG_PASSPHRASE   sparks-dev-lab, unless PULUMI_CONFIG_PASSPHRASE or
#                              PULUMI_CONFIG_PASSPHRASE_FILE is already set

__sparks_env_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

case ":${PATH:-}:" in
*":$__sparks_env_root/node_modules/.bin:"*) ;;
*) export PATH="$__sparks_env_root/node_modules/.bin${PATH:+:$PATH}" ;;
esac
case ":$PATH:" in
*":$__sparks_env_root/.tools/bin:"*) ;;
*) export PATH="$__sparks_env_root/.tools/bin:$PATH" ;;
esac

export PULUMI_HOME="$__sparks_env_root/.tools/pulumi-home"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

if [[ -z "${PULUMI_BACKEND_URL:-}" ]]; then
	mkdir -p "$__sparks_env_root/.state"
	export PULUMI_BACKEND_URL="file://$__sparks_env_root/.state"
fi

# Lab/dev only: a fixed, public passphrase for stack secrets so that non-interactive runs work.
# Production operators set their own PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE.
if [[ -z "${PULUMI_CONFIG_PASSPHRASE+set}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
	export PULUMI_CONFIG_PASSPHRASE=sparks-dev-lab
fi

unset __sparks_env_root
