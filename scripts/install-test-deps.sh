#!/usr/bin/env bash
# Installs the real servers the tests run against, if missing. Idempotent.
#   postgresql (server + pg_dump/psql/pgbench), redis-server + redis-cli   Debian packages
#   s3s-fs  (S3-compatible server, crates.io)                             ~3.5 min the first time
#   diffutils, util-linux (diff -r, setpriv, runuser)                      Debian packages
#   chromium (headless, for the dashboard test)                           Debian package
#   aiosmtpd (an SMTP server for the alert e-mail test)                   Debian (python3-aiosmtpd), else PyPI
#   moto[server] (S3 with versioning and Object Lock, and boto3; tests/it/immutable.rs)  PyPI
# The tests start their own throw-away servers on 127.0.0.1 (tests/common): nothing here starts a service.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

need_apt=()
command -v diff >/dev/null || need_apt+=(diffutils)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v runuser >/dev/null || need_apt+=(util-linux)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv python3-pip)
# Debian's python3 refuses pip installs into the system (PEP 668): aiosmtpd comes from Debian itself.
python3 -c 'import aiosmtpd' 2>/dev/null || need_apt+=(python3-aiosmtpd)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (Debian packages)"
  apt-get update -qq
  # Packages must not start their own servers: the tests run private ones.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  rm -f /usr/sbin/policy-rc.d
fi

if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  echo "== installing aiosmtpd (SMTP test server, PyPI; a system without Debian's package)"
  python3 -m pip install --quiet --user --break-system-packages aiosmtpd 2>/dev/null || python3 -m pip install --quiet aiosmtpd
fi

# moto goes into a virtualenv of its own (Debian's python3 refuses pip installs into the system, PEP 668);
# tests/it/common/moto.rs looks there first, then on PATH.
moto_venv="${GUMVAULT_TEST_VENV:-$HOME/.local/share/gumvault-test-venv}"
if [ ! -x "$moto_venv/bin/moto_server" ] && ! { command -v moto_server >/dev/null && python3 -c 'import boto3, flask' 2>/dev/null; }; then
  echo "== installing moto[server] (S3 server with versioning and Object Lock, PyPI) into $moto_venv"
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/python3" -m pip install --quiet 'moto[server]>=5.1,<6'
fi

if ! command -v s3s-fs >/dev/null; then
  echo "== installing s3s-fs (S3-compatible test server)"
  cargo install s3s-fs@0.14.1 --features binary --locked
fi
