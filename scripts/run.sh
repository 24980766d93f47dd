#!/usr/bin/env bash
# The main job, after set-up: search-gateway in its embedded all-in-one mode (in-process engines,
# qdrant-edge under ./data, in-process cache) on port 8080. With no model flags it serves
# multilingual-e5-large and bge-reranker-base, downloaded on first start into ./models.
# Arguments are passed on, e.g. the tiny fixtures for a quick look:
#   scripts/run.sh --embed-model-dir models/fixtures/tiny-e5 --rerank-model-dir models/fixtures/tiny-reranker
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh >&2
exec cargo run --release --locked -p search-gateway -- "$@"
