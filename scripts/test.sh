#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, format, lints, goldens, unit/router/end-to-end tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh
echo "== format";  cargo fmt --all --check
echo "== clippy";  cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== goldens"; .venv/bin/python models/tools/make_goldens.py --check
echo "== build";   cargo build --workspace --bins --locked
echo "== tests";   cargo test --workspace --locked
# The Qdrant-server backend's tests need a server; without QDRANT_URL they are reported as ignored.
if [[ -n "${QDRANT_URL:-}" ]]; then
    echo "== tests against the Qdrant server at $QDRANT_URL"
    cargo test --locked -p e2e --test gateway -- --ignored
fi
