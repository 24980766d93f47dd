#!/usr/bin/env bash
# Runs one bench in release mode against the full-size bench models (generated if missing).
#   scripts/bench.sh embed -- --model models/bench/e5-large-shaped-int8
#   BENCH_CPU=avx2 scripts/bench.sh embed -- ...   (ONNX Runtime's AVX2 kernels on an AVX-512 core)
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
# BENCH_CPU=avx2: the bench and the services it starts see an AVX2-only CPU (no AVX-512, VNNI or
# AMX), so ONNX Runtime runs the kernels an AMD EPYC Rome/Milan runs (benches/cpu/avx2_only.c).
if [ "${BENCH_CPU:-}" = avx2 ]; then
    cc -shared -fPIC -O2 -Wall -o target/avx2_only.so benches/cpu/avx2_only.c
    cargo bench --locked -p benches --bench "$bench" --no-run >&2
    export LD_PRELOAD="$root/target/avx2_only.so"
elif [ -n "${BENCH_CPU:-}" ]; then
    echo "BENCH_CPU must be avx2 or unset, not '$BENCH_CPU'" >&2
    exit 2
fi
exec cargo bench --locked -p benches --bench "$bench" -- "$@"
