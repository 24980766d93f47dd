#!/usr/bin/env bash
# The main job, after set-up. Until the search gateway lands (issue 4) this is the embed-service;
# with no --model-dir it serves multilingual-e5-large, downloaded (~2.2 GB) on first start.
# Arguments are passed on: scripts/run.sh --model-dir models/fixtures/tiny-e5 --port 5555
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh >&2
exec cargo run --release --locked -p embed-service -- "$@"
