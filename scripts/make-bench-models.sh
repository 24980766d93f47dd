#!/usr/bin/env bash
# Generates the full-size bench models (production shapes, random weights, fp32 + int8) under
# models/bench/: ~4 GB on disk, about two minutes. Not committed; the benches call this if needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh >&2
exec .venv/bin/python models/tools/make_fixtures.py bench "$@"
