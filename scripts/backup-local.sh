#!/usr/bin/env bash
# The main job on a fresh machine, no server needed: builds gumvault, creates a default local repository if there
# is none, and backs up the given paths (default: /etc) into it.
#
#   repository: ${GUMVAULT_REPO:-$HOME/.local/share/gumvault/repo}
#   password:   GUMVAULT_PASSWORD / GUMVAULT_PASSWORD_FILE / GUMVAULT_PASSWORD_COMMAND if set, otherwise a random
#               password generated once into $HOME/.config/gumvault/password (mode 0600) — keep a copy of it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --locked --quiet
bin="$PWD/target/release/gumvault"

export GUMVAULT_REPO="${GUMVAULT_REPO:-$HOME/.local/share/gumvault/repo}"
if [ -z "${GUMVAULT_PASSWORD:-}${GUMVAULT_PASSWORD_FILE:-}${GUMVAULT_PASSWORD_COMMAND:-}" ]; then
  pwfile="$HOME/.config/gumvault/password"
  if [ ! -f "$pwfile" ]; then
    mkdir -p "$(dirname "$pwfile")"
    (umask 077 && head -c 32 /dev/urandom | base64 > "$pwfile")
    echo "generated a repository password in $pwfile (keep a copy somewhere safe)"
  fi
  export GUMVAULT_PASSWORD_FILE="$pwfile"
fi

if [ ! -e "$GUMVAULT_REPO/config" ]; then
  mkdir -p "$(dirname "$GUMVAULT_REPO")"
  "$bin" init
fi

[ $# -gt 0 ] || set -- /etc
"$bin" backup "$@"
"$bin" snapshots
