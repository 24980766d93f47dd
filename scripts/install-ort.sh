#!/usr/bin/env bash
# Installs the ONNX Runtime shared library from the official `onnxruntime` wheel on PyPI, at the
# version pinned in models/tools/requirements.txt, as DEST/libonnxruntime.so (a real file).
# Used by scripts/setup.sh (DEST = .ort/lib) and by docker/Dockerfile (DEST = /opt/onnxruntime/lib),
# so local runs, CI and images load the same library.
#   scripts/install-ort.sh PYTHON DEST
set -euo pipefail
python="${1:?usage: install-ort.sh PYTHON DEST}"
dest="${2:?usage: install-ort.sh PYTHON DEST}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^onnxruntime==\([0-9.]*\).*/\1/p' "$root/models/tools/requirements.txt")"
[ -n "$version" ] || { echo "install-ort: no onnxruntime pin in models/tools/requirements.txt" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    "onnxruntime==$version" -d "$work"
mkdir -p "$dest"
"$python" - "$work" "$dest" <<'PY'
import glob, os, sys, zipfile
work, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(work, "onnxruntime-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    libs = sorted(n for n in z.namelist() if os.path.basename(n).startswith("libonnxruntime.so."))
    if not libs:
        sys.exit(f"install-ort: no libonnxruntime.so.* in {wheel}")
    with z.open(libs[-1]) as src, open(os.path.join(dest, "libonnxruntime.so.tmp"), "wb") as out:
        out.write(src.read())
os.replace(os.path.join(dest, "libonnxruntime.so.tmp"), os.path.join(dest, "libonnxruntime.so"))
print(f"install-ort: {os.path.join(dest, 'libonnxruntime.so')} from {os.path.basename(wheel)} ({libs[-1]})")
PY
