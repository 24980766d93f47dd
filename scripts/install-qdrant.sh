#!/usr/bin/env bash
# Installs the Qdrant server v1.18.1 (the version compose.yaml pins) as .qdrant/bin/qdrant, for the
# tests that run against a real server, where one can be had:
#   - QDRANT_BIN already names a server binary: nothing to install, the tests use that one;
#   - QDRANT_ARCHIVE_SHA256 is set: Qdrant's official release archive is downloaded and verified
#     against it (take it from the release page; an unverified download is refused);
#   - otherwise no Qdrant server is installed (no package registry ships one), and this says so in
#     one line: the Qdrant-server tests are then skipped by name and counted (scripts/test.sh),
#     and the compose rehearsal runs the gateway on its embedded store (scripts/rehearse.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

version=v1.18.1
archive_url="https://github.com/qdrant/qdrant/releases/download/$version/qdrant-x86_64-unknown-linux-gnu.tar.gz"
target=.qdrant/bin/qdrant

if [ -n "${QDRANT_BIN:-}" ]; then
    exit 0
fi
if [ -x "$target" ] && [ "$(cat .qdrant/bin/.version 2>/dev/null)" = "$version" ]; then
    exit 0
fi
if [ -z "${QDRANT_ARCHIVE_SHA256:-}" ]; then
    echo "setup: no Qdrant server installed (set QDRANT_BIN, or QDRANT_ARCHIVE_SHA256 to download $version): the 4 Qdrant-server tests are skipped and the rehearsal uses the embedded store"
    exit 0
fi
echo "setup: downloading the Qdrant server $version"
mkdir -p .qdrant/bin
archive="$(mktemp)"
trap 'rm -f "$archive"' EXIT
curl --fail --location --silent --show-error --output "$archive" "$archive_url"
echo "$QDRANT_ARCHIVE_SHA256  $archive" | sha256sum --check --quiet
tar -xzf "$archive" -C .qdrant/bin qdrant
mv .qdrant/bin/qdrant "$target.tmp"
chmod +x "$target.tmp"
mv "$target.tmp" "$target"
echo "$version" > .qdrant/bin/.version
