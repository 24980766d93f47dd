#!/usr/bin/env bash
# Relevance of the embedded gateway on the test collections of ../shared/data/ir, with the
# real-weight test models (models/real/, from scripts/setup.sh), in release mode:
#   scripts/eval.sh                      # every collection x both models, dense, rerank off
#   scripts/eval.sh -- --rerank off,on   # extra arguments for every `search-gateway eval`
# Each collection is indexed once per model into target/eval-data/<model>/ (re-runs only search).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ "${1:-}" = "--" ] && shift
scripts/setup.sh >&2
cargo build --release --locked -p search-gateway >&2
ir="${IR_DIR:-$root/../shared/data/ir}"
for model in all-minilm-l6-v2 multilingual-e5-small; do
    for collection in cranfield xquad-r/en xquad-r/de xquad-r/es xquad-r/zh xquad-r/ru; do
        echo "## $collection, $model"
        target/release/search-gateway eval --queries "$ir/$collection/queries.jsonl" \
            --qrels "$ir/$collection/qrels/test.tsv" --corpus "$ir/$collection/corpus.jsonl" \
            --data-dir "target/eval-data/$model" --embed-model-dir "models/real/$model" \
            --rerank-model-dir models/fixtures/tiny-reranker --rerank off --progress-secs 60 "$@"
        echo
    done
done
