#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, format, lints, goldens, unit/router/end-to-end tests,
# and the compose stack rehearsed on a real Docker engine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh
echo "== format";  cargo fmt --all --check
echo "== clippy";  cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== goldens"; .venv/bin/python models/tools/make_goldens.py --check
echo "== build";   cargo build --workspace --bins --locked
# The Qdrant-server tests start the server scripts/setup.sh installed (or the one QDRANT_BIN names).
export QDRANT_BIN="${QDRANT_BIN:-$root/.qdrant/bin/qdrant}"
echo "== tests";   cargo test --workspace --locked
# The production stack on a real Docker engine (installs docker.io, starts and stops dockerd).
if [ "$(id -u)" = 0 ] || /usr/bin/docker info >/dev/null 2>&1; then
    echo "== compose rehearsal"
    scripts/rehearse.sh --profile debug
else
    echo "== compose rehearsal: NOT RUN: it needs root (to install docker.io and start dockerd) or a running Docker engine"
fi
