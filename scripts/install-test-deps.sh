#!/usr/bin/env bash
# Installs the real servers the tests run against, if missing. Idempotent.
#   s3s-fs  (S3-compatible server, crates.io)        ~3.5 min the first time
#   diffutils, util-linux (diff -r, setpriv)          Debian packages
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

need_apt=()
command -v diff >/dev/null || need_apt+=(diffutils)
command -v setpriv >/dev/null || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if ! command -v s3s-fs >/dev/null; then
  echo "== installing s3s-fs (S3-compatible test server)"
  cargo install s3s-fs@0.14.1 --features binary --locked
fi
