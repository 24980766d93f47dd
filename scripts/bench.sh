#!/usr/bin/env bash
# Runs one bench in release mode against the full-size bench models (generated if missing).
#   scripts/bench.sh embed -- --model models/bench/e5-large-shaped-int8
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bench="${1:?usage: scripts/bench.sh <embed|rerank|gateway|ingest|upsert|search_load|tracing|store|live|sync> [-- bench args]}"
shift
[ "${1:-}" = "--" ] && shift
scripts/setup.sh >&2
# Made again when missing or made with another tokenizer than XLM-R's (scripts/make-bench-models.sh).
tokenizer="$(sha256sum models/real/multilingual-e5-small/tokenizer.json | cut -d' ' -f1)"
[ -d models/bench/e5-large-shaped-int8 ] && [ -d models/bench/bge-reranker-base-shaped-int8 ] \
    && [ "$(cat models/bench/.tokenizer.sha256 2>/dev/null)" = "$tokenizer" ] || scripts/make-bench-models.sh >&2
cargo build --release --locked --workspace --bins >&2
exec cargo bench --locked -p benches --bench "$bench" -- "$@"
