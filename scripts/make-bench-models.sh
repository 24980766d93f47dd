#!/usr/bin/env bash
# Generates the full-size bench models (production shapes, random weights, fp32 + int8) under
# models/bench/: ~4 GB on disk, about two minutes. Not committed; the benches call this if needed.
# Their tokenizer is XLM-R's (models/real/multilingual-e5-small/tokenizer.json, from set-up); its
# SHA-256 in models/bench/.tokenizer.sha256 says which one the models were made with.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh >&2
.venv/bin/python models/tools/make_fixtures.py bench "$@"
sha256sum models/real/multilingual-e5-small/tokenizer.json | cut -d' ' -f1 > models/bench/.tokenizer.sha256
