#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (an S3-compatible server from
# crates.io), then runs format, lint and every test. Usage: scripts/test.sh   (CI runs this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-test-deps.sh

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== tests"
cargo test --locked --all-targets
