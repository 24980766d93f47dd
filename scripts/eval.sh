#!/usr/bin/env bash
# Relevance of the embedded gateway on the test collections of ../shared/data/ir, with the
# real-weight test models (models/real/, from scripts/setup.sh), in release mode:
#   scripts/eval.sh                      # every collection x both models, dense/sparse/hybrid, rerank off
#   scripts/eval.sh -- --fusion rrf,dbsf # extra arguments for every `search-gateway eval`
# Each collection is indexed once per model into target/eval-data/<model>/ (re-runs only search);
# then the cross-lingual pool of the five XQuAD-R languages (tests/eval/xquad_pool.py), e5-small.
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
            --rerank-model-dir models/fixtures/tiny-reranker --rerank off --retrieval dense,sparse,hybrid \
            --progress-secs 60 "$@"
        echo
    done
done
pool=target/eval-pool/xquad-r-pool
.venv/bin/python tests/eval/xquad_pool.py "$ir/xquad-r" "$pool" >&2
echo "## cross-lingual pool of XQuAD-R en, de, es, zh, ru, multilingual-e5-small"
target/release/search-gateway eval --queries "$pool/queries.jsonl" --qrels "$pool/qrels/test.tsv" \
    --corpus "$pool/corpus.jsonl" --collection xquad-pool --data-dir target/eval-data/multilingual-e5-small \
    --embed-model-dir models/real/multilingual-e5-small --rerank-model-dir models/fixtures/tiny-reranker \
    --rerank off --retrieval dense,sparse,hybrid --progress-secs 60 "$@"
